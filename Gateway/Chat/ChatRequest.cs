using System.Text.Json;
using LlmStream.Gateway.Access;
using LlmStream.Messaging;

namespace LlmStream.Gateway.Chat;

/// <summary>The body of POST /chat.</summary>
/// <param name="Message">What the user says. Required, not blank.</param>
/// <param name="SessionId">Continue or name a session; a new unguessable id when absent.</param>
/// <param name="Model">Model or deployment; LLM_MODEL when absent.</param>
/// <param name="SystemPrompt">Instructions for the model.</param>
/// <param name="Priority">-10 to 10: above 5 goes to the high queue, below -5 to the low queue.</param>
/// <param name="UserId">Who asks, recorded on the task.</param>
/// <param name="History">false: send the model this message alone, without the session's earlier turns.</param>
public sealed record ChatRequest(string Message, string? SessionId, string? Model, string? SystemPrompt, int? Priority, string? UserId, bool? History = null)
{
    // "stream" is the original's flag: accepted (a boolean) so its clients work unchanged; answers always stream here.
    static readonly HashSet<string> Known = ["message", "session_id", "model", "system_prompt", "priority", "user_id", "stream", "history"];

    /// <summary>Strict reading: wrong types, unknown fields and out-of-range values are errors naming the field.</summary>
    public static (ChatRequest? Request, Dictionary<string, string[]> Errors) Parse(JsonElement body)
    {
        var errors = new Dictionary<string, string[]>();
        JsonBody.RejectUnknownFields(body, Known, errors);

        var message = String(body, "message", errors, required: true, maxLength: null);
        if (message is not null && string.IsNullOrWhiteSpace(message))
            errors["message"] = ["must not be blank"];
        var sessionId = String(body, "session_id", errors, required: false, maxLength: Ids.MaxClientIdLength);
        if (sessionId is not null && !Ids.IsValidClientId(sessionId))
            errors["session_id"] = [$"must be 1 to {Ids.MaxClientIdLength} characters of letters, digits, '-', '_', '.' or ':'"];
        var model = String(body, "model", errors, required: false, maxLength: 200);
        if (model is not null && string.IsNullOrWhiteSpace(model))
            errors["model"] = ["must not be blank; leave it out to use the default model"];
        var systemPrompt = String(body, "system_prompt", errors, required: false, maxLength: null);
        var userId = String(body, "user_id", errors, required: false, maxLength: 200);

        int? priority = null;
        if (body.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.Number || !p.TryGetInt32(out var value))
                errors["priority"] = [$"must be an integer between {WorkQueues.MinPriority} and {WorkQueues.MaxPriority}, not {Shown(p)}"];
            else if (!WorkQueues.IsValidPriority(value))
                errors["priority"] = [$"must be between {WorkQueues.MinPriority} and {WorkQueues.MaxPriority}, not {value}"];
            else
                priority = value;
        }

        Bool(body, "stream", errors);
        var history = Bool(body, "history", errors);

        return errors.Count > 0 ? (null, errors) : (new ChatRequest(message!, sessionId, model, systemPrompt, priority, userId, history), errors);
    }

    static string? String(JsonElement body, string name, Dictionary<string, string[]> errors, bool required, int? maxLength)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            if (required)
                errors[name] = ["is required"];
            return null;
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            errors[name] = [$"must be a string, not {JsonBody.Describe(value.ValueKind)}"];
            return null;
        }
        string text;
        try
        {
            text = value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            errors[name] = ["is not valid text (invalid UTF-8 or a lone surrogate)"];
            return null;
        }
        if (maxLength is { } max && text.Length > max)
        {
            errors[name] = [$"must be at most {max} characters"];
            return null;
        }
        return text;
    }

    static bool? Bool(JsonElement body, string name, Dictionary<string, string[]> errors)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False)
            return value.GetBoolean();
        errors[name] = [$"must be true or false, not {Shown(value)}"];
        return null;
    }

    static string Shown(JsonElement value) => value.ValueKind == JsonValueKind.Number ? value.GetRawText() : JsonBody.Describe(value.ValueKind);
}
