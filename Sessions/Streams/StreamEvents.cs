using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmStream.Sessions.Streams;

/// <summary>
/// The JSON payloads of stream events, as clients receive them in SSE <c>data:</c> lines. Text is
/// always JSON-encoded, so a token containing "\n\ndata:" cannot break the SSE framing.
/// </summary>
public static class StreamEvents
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Queued(string taskId, string model, int priority, string queue) =>
        JsonSerializer.Serialize(new QueuedEvent(taskId, model, priority, queue), Json);

    /// <summary>The started event is written by the store, which alone knows the attempt number: prefix + attempt + "}".</summary>
    public static string StartedPrefix(string taskId) => $"{{\"task_id\":{JsonSerializer.Serialize(taskId)},\"attempt\":";

    public static string Started(string taskId, int attempt) => StartedPrefix(taskId) + attempt + "}";

    public static string Token(string taskId, int attempt, string text) => Token(TokenPrefix(taskId, attempt), text);

    /// <summary>What every token event of one attempt starts with: its data is this, the text as a JSON string, and "}".</summary>
    public static string TokenPrefix(string taskId, int attempt) =>
        StartedPrefix(taskId) + attempt.ToString(System.Globalization.CultureInfo.InvariantCulture) + ",\"text\":";

    /// <summary>A token event from its attempt's <see cref="TokenPrefix"/>: the same JSON the serializer writes, without building it for every token.</summary>
    public static string Token(string prefix, string text)
    {
        try
        {
            return string.Concat(prefix, "\"", JsonEncodedText.Encode(text, Json.Encoder).Value, "\"}");
        }
        catch (ArgumentException)
        {
            // Half of a surrogate pair (a provider may split one between chunks): the serializer escapes it as \uXXXX.
            return string.Concat(prefix, JsonSerializer.Serialize(text, Json), "}");
        }
    }

    /// <param name="toolCalls">JSON array of {id, name, arguments}: the function calls the model asked for, if any.</param>
    public static string Done(string taskId, int attempt, string? finishReason, TokenUsage? usage, string? toolCalls = null) =>
        JsonSerializer.Serialize(new DoneEvent(taskId, attempt, finishReason, usage,
            toolCalls is null ? null : JsonDocument.Parse(toolCalls).RootElement), Json);

    /// <param name="failure">Adds OpenAI's view of the failure: its code, the status an OpenAI client would get, and whether a retry could help.</param>
    public static string Error(string taskId, int? attempt, string error, FailureDetail? failure = null) =>
        JsonSerializer.Serialize(new ErrorEvent(taskId, attempt, error, failure?.Code, failure?.Status, failure?.Retryable), Json);

    public static string Cancelled(string taskId) => JsonSerializer.Serialize(new CancelledEvent(taskId), Json);

    sealed record QueuedEvent(string TaskId, string Model, int Priority, string Queue);
    sealed record DoneEvent(string TaskId, int Attempt, string? FinishReason, TokenUsage? Usage, JsonElement? ToolCalls);
    sealed record ErrorEvent(string TaskId, int? Attempt, string Error, string? Code, int? Status, bool? Retryable);
    sealed record CancelledEvent(string TaskId);
}
