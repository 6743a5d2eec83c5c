using System.Text.Json;
using LlmStream.Messaging;
using LlmStream.Providers;

namespace LlmStream.Gateway.Embeddings;

/// <summary>The body of POST /embeddings.</summary>
/// <param name="Texts">The texts to embed, in order: 1 to EMBEDDING_MAX_TEXTS non-empty strings.</param>
/// <param name="Model">Embedding model or deployment; EMBEDDING_MODEL when absent.</param>
/// <param name="Priority">-10 to 10, as for chats: above 5 goes to embeddings-high, below -5 to embeddings-low.</param>
/// <param name="Dimensions">Shorter vectors, for models that support it (text-embedding-3).</param>
public sealed record EmbeddingRequest(IReadOnlyList<string> Texts, string? Model, int? Priority, int? Dimensions)
{
    static readonly HashSet<string> Known = ["texts", "model", "priority", "dimensions"];

    /// <summary>Strict reading, like POST /chat: wrong types, unknown fields and limits are errors naming the field (texts[i] for one text).</summary>
    public static (EmbeddingRequest? Request, Dictionary<string, string[]> Errors) Parse(JsonElement body, EmbeddingOptions limits)
    {
        var errors = new Dictionary<string, string[]>();
        JsonBody.RejectUnknownFields(body, Known, errors);

        var texts = body.TryGetProperty("texts", out var t) && t.ValueKind != JsonValueKind.Null
            ? EmbeddingInput.ReadTexts(t, "texts", limits, errors)
            : EmbeddingInput.Fail(errors, "texts", "is required: an array of the strings to embed");
        var model = OptionalString(body, "model", errors);
        var dimensions = EmbeddingInput.ReadDimensions(body, errors);
        int? priority = null;
        if (body.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.Number || !p.TryGetInt32(out var value) || !WorkQueues.IsValidPriority(value))
                errors["priority"] = [$"must be an integer between {WorkQueues.MinPriority} and {WorkQueues.MaxPriority}"];
            else
                priority = value;
        }
        return errors.Count > 0 ? (null, errors) : (new EmbeddingRequest(texts!, model, priority, dimensions), errors);
    }

    static string? OptionalString(JsonElement body, string name, Dictionary<string, string[]> errors)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.String || value.GetString() is not { } text || string.IsNullOrWhiteSpace(text) || text.Length > 200)
        {
            errors[name] = ["must be a non-blank string of at most 200 characters; leave it out for the default"];
            return null;
        }
        return text;
    }
}

/// <summary>Checks shared by /embeddings and /v1/embeddings.</summary>
public static class EmbeddingInput
{
    /// <summary>
    /// An array of 1 to EMBEDDING_MAX_TEXTS non-empty strings within EMBEDDING_MAX_TOTAL_CHARS, or null with the
    /// error under <paramref name="field"/> (or field[i] for one text).
    /// </summary>
    public static List<string>? ReadTexts(JsonElement value, string field, EmbeddingOptions limits, Dictionary<string, string[]> errors)
    {
        if (value.ValueKind != JsonValueKind.Array)
            return Fail(errors, field, $"must be an array of strings, not {JsonBody.Describe(value.ValueKind)}");
        var count = value.GetArrayLength();
        if (count == 0)
            return Fail(errors, field, "must hold at least one text");
        if (count > limits.MaxTexts)
            return Fail(errors, field, $"holds {count} texts; at most {limits.MaxTexts} are accepted in one batch (EMBEDDING_MAX_TEXTS)");

        var texts = new List<string>(count);
        long characters = 0;
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            var name = $"{field}[{index}]";
            if (item.ValueKind != JsonValueKind.String)
                return Fail(errors, name, $"must be a string, not {JsonBody.Describe(item.ValueKind)}");
            string text;
            try { text = item.GetString()!; }
            catch (InvalidOperationException) { return Fail(errors, name, "is not valid text (invalid UTF-8 or a lone surrogate)"); }
            if (text.Length == 0)
                return Fail(errors, name, "must not be empty");
            characters += text.Length;
            if (characters > limits.MaxTotalChars)
                return Fail(errors, field, $"the texts hold more than {limits.MaxTotalChars} characters together (EMBEDDING_MAX_TOTAL_CHARS)");
            texts.Add(text);
            index++;
        }
        return texts;
    }

    /// <summary>
    /// Every text's tokens, counted with the model's tokenizer once, here (they travel in the message), and the first
    /// text over the model's input limit, as (index, tokens).
    /// </summary>
    public static async Task<(int[] Tokens, (int Index, int Tokens)? TooLong)> CountAsync(IReadOnlyList<string> texts, string model, int maxTokens, PromptTokens tokens)
    {
        // Long inputs (as long prompts) are counted on the thread pool, not on the socket thread that read the request (the gateway
        // schedules request work inline).
        if (texts.Sum(t => (long)t.Length) >= Intake.PromptBudget.LongPrompt)
            await Task.Yield();
        var counts = new int[texts.Count];
        for (var i = 0; i < texts.Count; i++)
        {
            counts[i] = tokens.CountText(model, texts[i]);
            if (counts[i] > maxTokens)
                return (counts, (i, counts[i]));
        }
        return (counts, null);
    }

    public static int? ReadDimensions(JsonElement body, Dictionary<string, string[]> errors)
    {
        if (!body.TryGetProperty("dimensions", out var d) || d.ValueKind == JsonValueKind.Null)
            return null;
        if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out var value) || value is < 1 or > 65_536)
        {
            errors["dimensions"] = ["must be an integer between 1 and 65536"];
            return null;
        }
        return value;
    }

    public static List<string>? Fail(Dictionary<string, string[]> errors, string field, string message)
    {
        errors[field] = [message];
        return null;
    }
}
