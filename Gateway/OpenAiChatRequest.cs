using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;

namespace LlmStream.Gateway;

/// <summary>The accepted subset of OpenAI's chat-completions request; anything else this gateway cannot honour is a 400.</summary>
public sealed record OpenAiChatRequest(
    string Model, IReadOnlyList<ChatTurn> Conversation, bool Stream, bool IncludeUsage, int Priority,
    float? Temperature, float? TopP, int? MaxTokens, IReadOnlyList<string>? Stop, string? User)
{
    public readonly record struct Error(string Message, string? Param);

    static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant"];

    public static (OpenAiChatRequest? Request, Error? Error) Parse(JsonElement body, string? priorityHeader, string defaultModel)
    {
        try
        {
            return (Read(body, priorityHeader, defaultModel), null);
        }
        catch (InvalidRequest e)
        {
            return (null, new Error(e.Message, e.Param));
        }
        catch (InvalidOperationException)
        {
            return (null, new Error("the body contains text that is not valid UTF-8", null));
        }
    }

    sealed class InvalidRequest(string message, string? param) : Exception(message)
    {
        public string? Param { get; } = param;
    }

    static OpenAiChatRequest Read(JsonElement body, string? priorityHeader, string defaultModel)
    {
        foreach (var unsupported in new[] { "tools", "functions" })
        {
            if (body.TryGetProperty(unsupported, out var value) && value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0)
                throw new InvalidRequest($"'{unsupported}' is not supported by this gateway yet", unsupported);
        }
        if (body.TryGetProperty("n", out var n) && n.ValueKind != JsonValueKind.Null && (!n.TryGetInt32(out var count) || count != 1))
            throw new InvalidRequest("only n=1 is supported", "n");

        var model = OptionalString(body, "model") ?? defaultModel;
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw new InvalidRequest("'messages' must be a non-empty array of {role, content}", "messages");
        var conversation = new List<ChatTurn>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var param = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{param} must be an object", param);
            var role = OptionalString(message, "role", param + ".role")
                ?? throw new InvalidRequest($"{param}.role is required", param + ".role");
            if (!Roles.Contains(role))
                throw new InvalidRequest($"{param}.role '{role}' is not supported (system, developer, user, assistant)", param + ".role");
            conversation.Add(new ChatTurn(role == "developer" ? "system" : role, Content(message, param)));
        }

        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw new InvalidRequest("'stream' must be a boolean", "stream"),
        };
        var includeUsage = body.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object
            && options.TryGetProperty("include_usage", out var usage) && usage.ValueKind == JsonValueKind.True;

        var priority = 0;
        if (body.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.Number || !p.TryGetInt32(out priority) || !WorkQueues.IsValidPriority(priority))
                throw new InvalidRequest("'priority' must be an integer between -10 and 10", "priority");
        }
        else if (priorityHeader is not null)
        {
            if (!int.TryParse(priorityHeader, out priority) || !WorkQueues.IsValidPriority(priority))
                throw new InvalidRequest($"the X-Priority header must be an integer between -10 and 10, not '{priorityHeader}'", "X-Priority");
        }

        var maxTokens = OptionalInt(body, "max_completion_tokens") ?? OptionalInt(body, "max_tokens");
        var stop = body.TryGetProperty("stop", out var st) ? st.ValueKind switch
        {
            JsonValueKind.String => [st.GetString()!],
            JsonValueKind.Array when st.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String) && st.GetArrayLength() <= 4 =>
                st.EnumerateArray().Select(x => x.GetString()!).ToList(),
            JsonValueKind.Null => null,
            _ => throw new InvalidRequest("'stop' must be a string or up to 4 strings", "stop"),
        } : (IReadOnlyList<string>?)null;

        return new OpenAiChatRequest(model, conversation, stream, includeUsage, priority,
            OptionalFloat(body, "temperature", 0, 2), OptionalFloat(body, "top_p", 0, 1), maxTokens, stop, OptionalString(body, "user"));
    }

    static string Content(JsonElement message, string param)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
            throw new InvalidRequest($"{param}.content is required (tool calls are not supported yet)", param + ".content");
        if (content.ValueKind == JsonValueKind.String)
            return content.GetString()!;
        if (content.ValueKind == JsonValueKind.Array)
        {
            var text = new System.Text.StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || OptionalString(part, "type") != "text" || OptionalString(part, "text") is not { } t)
                    throw new InvalidRequest($"{param}.content parts must be {{type: \"text\", text}} (other parts are not supported)", param + ".content");
                text.Append(t);
            }
            return text.ToString();
        }
        throw new InvalidRequest($"{param}.content must be a string or an array of text parts", param + ".content");
    }

    static string? OptionalString(JsonElement body, string name, string? param = null) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw new InvalidRequest($"'{param ?? name}' must be a string", param ?? name);

    static int? OptionalInt(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i > 0 ? i
        : throw new InvalidRequest($"'{name}' must be a positive integer", name);

    static float? OptionalFloat(JsonElement body, string name, float min, float max) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetSingle(out var f) && f >= min && f <= max ? f
        : throw new InvalidRequest($"'{name}' must be a number between {min} and {max}", name);
}
