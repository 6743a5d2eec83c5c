using System.Text;
using System.Text.Json;

namespace LlmStream.FakeOpenAI;

/// <summary>The parts of a chat completions body the fake uses.</summary>
internal sealed record ChatBody(
    string Model,
    bool Stream,
    bool IncludeUsage,
    IReadOnlyList<RecordedMessage> Messages,
    bool HasTools,
    int? MaxTokens)
{
    /// <summary>The text of the last user message ("" when there is none).</summary>
    public string LastUserText => Messages.LastOrDefault(m => m.Role == "user").Content ?? "";

    public string? LastRole => Messages.Count > 0 ? Messages[^1].Role : null;

    /// <summary>Null when the body is not a JSON object with a messages array.</summary>
    public static ChatBody? Parse(string body, string? deployment)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return null;
            if (!root.TryGetProperty("messages", out var messagesElement) || messagesElement.ValueKind != JsonValueKind.Array)
            {
                return null;
            }

            var messages = new List<RecordedMessage>();
            foreach (var message in messagesElement.EnumerateArray())
            {
                if (message.ValueKind != JsonValueKind.Object) return null;
                var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
                var content = message.TryGetProperty("content", out var c) ? TextOf(c) : "";
                messages.Add(new RecordedMessage(role, content));
            }

            var model = deployment
                ?? (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "gpt-4o-mini");
            var stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
            var includeUsage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
                && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
            var hasTools = root.TryGetProperty("tools", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0;
            int? maxTokens = null;
            foreach (var name in new[] { "max_completion_tokens", "max_tokens" })
            {
                if (root.TryGetProperty(name, out var mt) && mt.ValueKind == JsonValueKind.Number && mt.TryGetInt32(out var v))
                {
                    maxTokens = v;
                    break;
                }
            }
            return new ChatBody(model, stream, includeUsage, messages, hasTools, maxTokens);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Content as text: a string, or the text parts of an array joined with no separator.</summary>
    private static string TextOf(JsonElement content)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Array:
                var text = new StringBuilder();
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.Object
                        && part.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
                    {
                        text.Append(t.GetString());
                    }
                }
                return text.ToString();
            default:
                return "";
        }
    }
}

/// <summary>The parts of an embeddings body the fake uses.</summary>
internal sealed record EmbeddingBody(string Model, IReadOnlyList<string> Inputs, int Dimensions, bool Base64)
{
    private const int DefaultDimensions = 8;

    /// <summary>Null when the body is not valid: input must be a string or an array (of strings, or token arrays).</summary>
    public static EmbeddingBody? Parse(string body, string? deployment)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("input", out var input)) return null;

            var inputs = new List<string>();
            switch (input.ValueKind)
            {
                case JsonValueKind.String:
                    inputs.Add(input.GetString()!);
                    break;
                case JsonValueKind.Array:
                    foreach (var item in input.EnumerateArray())
                    {
                        // Token arrays are accepted and embedded by their JSON text.
                        inputs.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : item.GetRawText());
                    }
                    break;
                default:
                    return null;
            }

            var dimensions = DefaultDimensions;
            if (root.TryGetProperty("dimensions", out var d) && d.ValueKind != JsonValueKind.Null)
            {
                if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out dimensions) || dimensions is < 1 or > 4096) return null;
            }
            var base64 = root.TryGetProperty("encoding_format", out var ef) && ef.ValueKind == JsonValueKind.String
                && ef.GetString() == "base64";
            var model = deployment
                ?? (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "text-embedding-3-small");
            return new EmbeddingBody(model, inputs, dimensions, base64);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
