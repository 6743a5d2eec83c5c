using System.Text;
using System.Text.Json;
using LlmStream.Sessions.Streams;

namespace LlmStream.Gateway.OpenAi;

/// <summary>
/// Turns one task's stream events into the Responses API's events, numbered from 0. The numbering is a function of the
/// task's events alone: every gateway, at any time, gives event N the same number, so a client resumes exactly after the
/// last one it saw (starting_after) on whichever gateway it reaches.
/// </summary>
/// <remarks>
/// queued → response.created; the first started → response.in_progress; the first token → output_item.added and
/// content_part.added, then one output_text.delta per token; done → output_text.done, content_part.done and
/// output_item.done, an item with its arguments for each function call, then response.completed (response.incomplete when
/// max_output_tokens cut it short) with usage; error → response.failed; cancelled → response.cancelled. A retry before
/// any text is not seen; a retry after text went out would splice two answers: it renders as response.failed, and
/// <see cref="Spliced"/> says so, for the caller to end the task.
/// </remarks>
public sealed class ResponseEvents(ResponseObject response)
{
    /// <summary>Writes one event: its type, its sequence number, and the rest of its fields.</summary>
    public delegate void Emit(string type, int sequenceNumber, Action<Utf8JsonWriter> fields);

    readonly StringBuilder _text = new();
    int _next;
    int _attempt;
    bool _inProgress;
    bool _messageOpen;

    /// <summary>The task's stream is over for this response (its last event has been rendered).</summary>
    public bool Ended { get; private set; }

    /// <summary>A new attempt started after text went out: rendered as failed; the task must be ended so that the retry stops.</summary>
    public bool Spliced { get; private set; }

    string MessageId => ResponseIds.Message(response.Task.TaskId);

    /// <summary>Renders one of the task's events (<paramref name="root"/> is its parsed data).</summary>
    public void Render(StreamEntry entry, JsonElement root, Emit emit)
    {
        if (Ended)
            return;
        switch (entry.Type)
        {
            case StreamEventTypes.Queued:
                Lifecycle(emit, "response.created", response.Request.Background ? "queued" : "in_progress");
                break;
            case StreamEventTypes.Started:
                var attempt = root.GetProperty("attempt").GetInt32();
                if (_messageOpen && attempt > _attempt)
                {
                    Spliced = true;
                    Ended = true;
                    Lifecycle(emit, "response.failed", "failed", error: FailureDetail.MidAnswer);
                    return;
                }
                _attempt = attempt;
                if (!_inProgress)
                {
                    _inProgress = true;
                    Lifecycle(emit, "response.in_progress", "in_progress");
                }
                break;
            case StreamEventTypes.Token when root.GetProperty("attempt").GetInt32() == _attempt:
                OpenMessage(emit);
                var delta = root.GetProperty("text").GetString() ?? "";
                _text.Append(delta);
                emit("response.output_text.delta", _next++, w =>
                {
                    TextPosition(w);
                    w.WriteString("delta", delta);
                    w.WriteStartArray("logprobs");
                    w.WriteEndArray();
                });
                break;
            case StreamEventTypes.Done:
                Ended = true;
                var calls = root.TryGetProperty("tool_calls", out var c) ? ResponseObject.Calls(c) : [];
                var usage = root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object ? u.Deserialize<TokenUsage>(StreamEvents.Json) : null;
                var text = _text.ToString();
                if (_messageOpen || calls.Count == 0)
                    CloseMessage(emit, text);
                var first = _messageOpen ? 1 : 0;
                for (var i = 0; i < calls.Count; i++)
                    Call(emit, first + i, i, calls[i]);
                var finish = root.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
                var status = finish == "length" ? "incomplete" : "completed";
                Lifecycle(emit, "response." + status, status, _messageOpen ? text : null, calls, usage);
                break;
            case StreamEventTypes.Error:
                Ended = true;
                var failure = new FailureDetail(
                    root.TryGetProperty("status", out var s) && s.TryGetInt32(out var code) ? code : 500, "server_error",
                    root.TryGetProperty("code", out var k) && k.ValueKind == JsonValueKind.String ? k.GetString() : null,
                    null, root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null);
                Lifecycle(emit, "response.failed", "failed", error: failure);
                break;
            case StreamEventTypes.Cancelled:
                Ended = true;
                Lifecycle(emit, "response.cancelled", "cancelled");
                break;
        }
    }

    void Lifecycle(Emit emit, string type, string status, string? text = null, IReadOnlyList<FunctionCallItem>? calls = null,
        TokenUsage? usage = null, FailureDetail? error = null) =>
        emit(type, _next++, w =>
        {
            w.WritePropertyName("response");
            response.Write(w, status, text, calls ?? [], usage, error);
        });

    void OpenMessage(Emit emit)
    {
        if (_messageOpen)
            return;
        _messageOpen = true;
        emit("response.output_item.added", _next++, w =>
        {
            w.WriteNumber("output_index", 0);
            w.WritePropertyName("item");
            response.WriteMessage(w, null, "in_progress");
        });
        emit("response.content_part.added", _next++, w =>
        {
            TextPosition(w);
            w.WritePropertyName("part");
            ResponseObject.WriteTextPart(w, "");
        });
    }

    void CloseMessage(Emit emit, string text)
    {
        OpenMessage(emit);
        emit("response.output_text.done", _next++, w =>
        {
            TextPosition(w);
            w.WriteString("text", text);
            w.WriteStartArray("logprobs");
            w.WriteEndArray();
        });
        emit("response.content_part.done", _next++, w =>
        {
            TextPosition(w);
            w.WritePropertyName("part");
            ResponseObject.WriteTextPart(w, text);
        });
        emit("response.output_item.done", _next++, w =>
        {
            w.WriteNumber("output_index", 0);
            w.WritePropertyName("item");
            response.WriteMessage(w, text, "completed");
        });
    }

    /// <summary>A function call's item: added without arguments, its arguments in one delta, then done.</summary>
    void Call(Emit emit, int outputIndex, int index, FunctionCallItem call)
    {
        var itemId = ResponseIds.FunctionCall(response.Task.TaskId, index);
        emit("response.output_item.added", _next++, w =>
        {
            w.WriteNumber("output_index", outputIndex);
            w.WritePropertyName("item");
            response.WriteCall(w, index, call, "in_progress", withArguments: false);
        });
        emit("response.function_call_arguments.delta", _next++, w =>
        {
            w.WriteString("item_id", itemId);
            w.WriteNumber("output_index", outputIndex);
            w.WriteString("delta", call.Arguments);
        });
        emit("response.function_call_arguments.done", _next++, w =>
        {
            w.WriteString("item_id", itemId);
            w.WriteNumber("output_index", outputIndex);
            w.WriteString("name", call.Name);
            w.WriteString("arguments", call.Arguments);
        });
        emit("response.output_item.done", _next++, w =>
        {
            w.WriteNumber("output_index", outputIndex);
            w.WritePropertyName("item");
            response.WriteCall(w, index, call, "completed");
        });
    }

    void TextPosition(Utf8JsonWriter w)
    {
        w.WriteString("item_id", MessageId);
        w.WriteNumber("output_index", 0);
        w.WriteNumber("content_index", 0);
    }
}
