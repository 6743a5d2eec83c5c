using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.OpenAi;

/// <summary>A function call the model made, as a response's output item.</summary>
public sealed record FunctionCallItem(string CallId, string Name, string Arguments);

/// <summary>
/// OpenAI's response object for one task: what the request asked for (its <see cref="StoredResponse"/>) and how far the
/// task got. The same writer serves POST, GET, cancel and the lifecycle events of the stream, so they never disagree.
/// </summary>
public sealed class ResponseObject(TaskRecord task, StoredResponse request)
{
    public TaskRecord Task => task;
    public StoredResponse Request => request;
    public string Id => ResponseIds.Of(task.TaskId);

    /// <summary>Where a reader of this response's events starts in its session's stream: just before its queued event.</summary>
    public string StreamAfter => task.StreamStart is { } start && StreamId.TryParse(start, out var id) ? id.Before().ToString() : "0";

    /// <summary>A task's stored request; null for a task that is no response (a /chat or /v1 chat task).</summary>
    public static ResponseObject? Of(TaskRecord task) =>
        task.Response is null ? null : new ResponseObject(task, JsonSerializer.Deserialize<StoredResponse>(task.Response, StreamEvents.Json)!);

    /// <summary>The status OpenAI gives a response in the task's state.</summary>
    public string Status => task.State switch
    {
        TaskState.Queued => "queued",
        TaskState.Started => "in_progress",
        TaskState.Completed => task.FinishReason == "length" ? "incomplete" : "completed",
        TaskState.Failed => "failed",
        _ => "cancelled",
    };

    /// <summary>The function calls of a finished task (its record's JSON array of {id, name, arguments}).</summary>
    public static IReadOnlyList<FunctionCallItem> Calls(JsonElement calls) =>
        calls.ValueKind != JsonValueKind.Array ? [] :
        [.. calls.EnumerateArray().Select(c => new FunctionCallItem(c.GetProperty("id").GetString()!, c.GetProperty("name").GetString()!, c.GetProperty("arguments").GetString()!))];

    /// <summary>The response as its record has it now: output once it completed, the error once it failed.</summary>
    public void WriteCurrent(Utf8JsonWriter w)
    {
        if (task.State != TaskState.Completed)
        {
            Write(w, Status, null, [], null, task.State == TaskState.Failed ? OpenAiError.FailureOf(task) : null);
            return;
        }
        using var calls = task.ToolCalls is null ? null : JsonDocument.Parse(task.ToolCalls);
        var items = calls is null ? [] : Calls(calls.RootElement);
        // A turn of calls alone has no message, as from OpenAI.
        Write(w, Status, items.Count > 0 && string.IsNullOrEmpty(task.Result) ? null : task.Result ?? "", items, task.Usage, null);
    }

    /// <param name="text">The message's text; null when there is no message item (not yet, or a turn of calls alone).</param>
    public void Write(Utf8JsonWriter w, string status, string? text, IReadOnlyList<FunctionCallItem> calls, TokenUsage? usage, FailureDetail? error)
    {
        w.WriteStartObject();
        w.WriteString("id", Id);
        w.WriteString("object", "response");
        w.WriteNumber("created_at", task.CreatedAt.ToUnixTimeSeconds());
        w.WriteString("status", status);
        w.WriteBoolean("background", request.Background);
        if (error is null)
            w.WriteNull("error");
        else
        {
            w.WriteStartObject("error");
            w.WriteString("code", error.Code ?? error.Type);
            w.WriteString("message", error.Message ?? task.Error ?? "the response failed");
            w.WriteEndObject();
        }
        if (status == "incomplete")
        {
            w.WriteStartObject("incomplete_details");
            w.WriteString("reason", "max_output_tokens");
            w.WriteEndObject();
        }
        else
            w.WriteNull("incomplete_details");
        WriteOrNull(w, "instructions", request.Instructions);
        if (request.MaxOutputTokens is { } max) w.WriteNumber("max_output_tokens", max); else w.WriteNull("max_output_tokens");
        w.WriteString("model", task.Model);
        w.WriteStartArray("output");
        if (text is not null)
            WriteMessage(w, text, "completed");
        for (var i = 0; i < calls.Count; i++)
            WriteCall(w, i, calls[i], "completed");
        w.WriteEndArray();
        w.WriteBoolean("parallel_tool_calls", request.ParallelToolCalls ?? true);
        WriteOrNull(w, "previous_response_id", request.PreviousTaskId is { } previous ? ResponseIds.Of(previous) : null);
        w.WriteStartObject("reasoning");
        w.WriteNull("effort");
        w.WriteNull("summary");
        w.WriteEndObject();
        w.WriteBoolean("store", request.Store);
        if (request.Temperature is { } temperature) w.WriteNumber("temperature", temperature); else w.WriteNull("temperature");
        w.WriteStartObject("text");
        w.WriteStartObject("format");
        w.WriteString("type", "text");
        w.WriteEndObject();
        w.WriteEndObject();
        w.WritePropertyName("tool_choice");
        w.WriteRawValue(request.ToolChoice ?? "\"auto\"");
        w.WritePropertyName("tools");
        w.WriteRawValue(request.Tools ?? "[]");
        if (request.TopP is { } topP) w.WriteNumber("top_p", topP); else w.WriteNull("top_p");
        w.WriteString("truncation", "disabled");
        if (usage is null)
            w.WriteNull("usage");
        else
        {
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", usage.PromptTokens);
            w.WriteStartObject("input_tokens_details");
            w.WriteNumber("cached_tokens", 0);
            w.WriteEndObject();
            w.WriteNumber("output_tokens", usage.CompletionTokens);
            w.WriteStartObject("output_tokens_details");
            w.WriteNumber("reasoning_tokens", 0);
            w.WriteEndObject();
            w.WriteNumber("total_tokens", usage.TotalTokens);
            w.WriteEndObject();
        }
        WriteOrNull(w, "user", request.User);
        w.WriteStartObject("metadata");
        foreach (var (key, value) in request.Metadata ?? new Dictionary<string, string>())
            w.WriteString(key, value);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>The message output item (index 0 when there is one), with its one output_text part.</summary>
    public void WriteMessage(Utf8JsonWriter w, string? text, string status)
    {
        w.WriteStartObject();
        w.WriteString("id", ResponseIds.Message(task.TaskId));
        w.WriteString("type", "message");
        w.WriteString("status", status);
        w.WriteString("role", "assistant");
        w.WriteStartArray("content");
        if (text is not null)
            WriteTextPart(w, text);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteTextPart(Utf8JsonWriter w, string text)
    {
        w.WriteStartObject();
        w.WriteString("type", "output_text");
        w.WriteString("text", text);
        w.WriteStartArray("annotations");
        w.WriteEndArray();
        w.WriteStartArray("logprobs");
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public void WriteCall(Utf8JsonWriter w, int index, FunctionCallItem call, string status, bool withArguments = true)
    {
        w.WriteStartObject();
        w.WriteString("id", ResponseIds.FunctionCall(task.TaskId, index));
        w.WriteString("type", "function_call");
        w.WriteString("status", status);
        w.WriteString("call_id", call.CallId);
        w.WriteString("name", call.Name);
        w.WriteString("arguments", withArguments ? call.Arguments : "");
        w.WriteEndObject();
    }

    static void WriteOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }
}
