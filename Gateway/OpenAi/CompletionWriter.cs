using System.Text.Json;
using LlmStream.Gateway.Streaming;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.OpenAi;

/// <summary>Turns a task's stream events into OpenAI's chat.completion / chat.completion.chunk wire format.</summary>
public sealed class CompletionWriter(string id, long created, string model)
{
    /// <summary>role chunk, one chunk per token, the finish_reason chunk, the usage chunk when asked for, [DONE].</summary>
    /// <remarks>
    /// Nothing is written until there is something to say (a token, the end, or a keep-alive once the wait outlasts
    /// SSE_KEEPALIVE_SECONDS): a request that fails before that, such as the provider's 404 for an unknown model, gets
    /// the failure's own status and error object, as from OpenAI, instead of a 200 stream with an error inside. The
    /// chunks of one batch of events go out together.
    /// </remarks>
    /// <param name="fromAttempt">Tokens of earlier attempts are skipped: a retry replaced them before this stream joined.</param>
    /// <param name="endTask">Ends the task as failed mid-answer, when a retry would start a second answer.</param>
    public async Task StreamAsync(HttpContext http, IAsyncEnumerable<StreamBatch> batches, bool includeUsage, int fromAttempt,
        ITaskStore store, string taskId, Func<Task> endTask)
    {
        using var open = http.RequestServices.GetRequiredService<LlmStreamMetrics>().StreamOpened("openai");
        SseWriter? sse = null;
        SseWriter Begun()
        {
            if (sse is null)
            {
                sse = SseWriter.Begin(http.Response);
                Chunk(sse, w => { w.WriteString("role", "assistant"); w.WriteString("content", ""); }, null);
            }
            return sse;
        }

        var tokensSent = false;
        try
        {
            await foreach (var batch in batches)
            {
                if (batch.IsQuiet)
                    Begun().KeepAlive();
                foreach (var entry in batch.Entries)
                {
                    using var data = JsonDocument.Parse(entry.Data);
                    var root = data.RootElement;
                    switch (entry.Type)
                    {
                        case StreamEventTypes.Started when root.GetProperty("attempt").GetInt32() > 1 && tokensSent:
                            // A retry after tokens went out cannot be expressed in this format (there is no "forget what you
                            // got"): the task ends here, so the retry is stopped instead of answering again unseen.
                            await endTask();
                            await EndWithErrorAsync(Begun(), FailureDetail.MidAnswer, FailureDetail.MidAnswer.Message!);
                            return;
                        case StreamEventTypes.Token when root.GetProperty("attempt").GetInt32() < fromAttempt:
                            break;
                        case StreamEventTypes.Token:
                            tokensSent = true;
                            var text = root.GetProperty("text").GetString();
                            Chunk(Begun(), w => w.WriteString("content", text), null);
                            break;
                        case StreamEventTypes.Done:
                            var done = Begun();
                            var finish = root.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : "stop";
                            if (root.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                            {
                                // The model's calls, each whole in one delta (a valid split of OpenAI's tool-call deltas).
                                var index = 0;
                                foreach (var call in calls.EnumerateArray())
                                {
                                    var i = index++;
                                    Chunk(done, w =>
                                    {
                                        w.WriteStartArray("tool_calls");
                                        WriteToolCall(w, call, i);
                                        w.WriteEndArray();
                                    }, null);
                                }
                            }
                            Chunk(done, _ => { }, finish);
                            if (includeUsage && root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                                UsageChunk(done, usage);
                            done.Data("[DONE]"u8);
                            await done.FlushAsync(CancellationToken.None);
                            return;
                        case StreamEventTypes.Error or StreamEventTypes.Cancelled:
                            var task = await store.GetAsync(taskId, CancellationToken.None);
                            if (sse is null)
                                await OpenAiError.WriteEndedAsync(http, task);
                            else
                                await EndWithErrorAsync(sse, OpenAiError.FailureOf(task), task?.Error ?? "the task ended without an answer");
                            return;
                    }
                }
                if (sse is not null)
                    await sse.FlushAsync(http.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client left; the generation goes on (DELETE /chat/{task_id} cancels it).
        }
        catch (OperationCanceledException)
        {
            // This gateway stops and its SHUTDOWN_TIMEOUT has passed; the generation goes on. OpenAI's SDKs retry with
            // the same Idempotency-Key, which joins the same task on another gateway.
            if (sse is null)
                await OpenAiError.WriteStoppingAsync(http);
            else
                await EndWithErrorAsync(sse, Stopping, Stopping.Message!);
        }
    }

    static readonly FailureDetail Stopping = new(503, "server_error", "service_unavailable", null,
        "this gateway is stopping; the answer goes on: repeat the request with the same Idempotency-Key, or read GET /chat/{task_id}", Retryable: true);

    /// <summary>Waits (asynchronously) for the task's end, then answers with the whole chat.completion.</summary>
    public async Task WriteWholeAsync(HttpContext http, IAsyncEnumerable<StreamBatch> batches, ITaskStore store, string taskId)
    {
        StreamEntry? last = null;
        try
        {
            await foreach (var batch in batches)
                last = batch.IsQuiet ? last : batch.Entries[^1];
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (OperationCanceledException)
        {
            await OpenAiError.WriteStoppingAsync(http); // this gateway stops, see StreamAsync
            return;
        }

        var task = await store.GetAsync(taskId, CancellationToken.None);
        if (last?.Type != StreamEventTypes.Done || task is null)
        {
            await OpenAiError.WriteEndedAsync(http, task);
            return;
        }

        http.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(http.Response.Body);
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        using var calls = task.ToolCalls is null ? null : JsonDocument.Parse(task.ToolCalls);
        if (calls is not null && string.IsNullOrEmpty(task.Result))
            w.WriteNull("content");
        else
            w.WriteString("content", task.Result);
        w.WriteNull("refusal");
        if (calls is not null)
        {
            w.WriteStartArray("tool_calls");
            var index = 0;
            foreach (var call in calls.RootElement.EnumerateArray())
                WriteToolCall(w, call, index++, withIndex: false);
            w.WriteEndArray();
        }
        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", task.FinishReason ?? "stop");
        w.WriteEndObject();
        w.WriteEndArray();
        if (task.Usage is { } usage)
        {
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", usage.PromptTokens);
            w.WriteNumber("completion_tokens", usage.CompletionTokens);
            w.WriteNumber("total_tokens", usage.TotalTokens);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    static void WriteToolCall(Utf8JsonWriter w, JsonElement call, int index, bool withIndex = true)
    {
        w.WriteStartObject();
        if (withIndex)
            w.WriteNumber("index", index);
        w.WriteString("id", call.GetProperty("id").GetString());
        w.WriteString("type", "function");
        w.WriteStartObject("function");
        w.WriteString("name", call.GetProperty("name").GetString());
        w.WriteString("arguments", call.GetProperty("arguments").GetString());
        w.WriteEndObject();
        w.WriteEndObject();
    }

    void Chunk(SseWriter sse, Action<Utf8JsonWriter> delta, string? finishReason) => sse.Data(w =>
    {
        Head(w);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        w.WriteNull("logprobs");
        if (finishReason is null) w.WriteNull("finish_reason"); else w.WriteString("finish_reason", finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    void UsageChunk(SseWriter sse, JsonElement usage) => sse.Data(w =>
    {
        Head(w);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        w.WritePropertyName("usage");
        usage.WriteTo(w);
        w.WriteEndObject();
    });

    /// <summary>An error inside a stream that has begun: OpenAI's error object as a data line, then [DONE].</summary>
    static async Task EndWithErrorAsync(SseWriter sse, FailureDetail failure, string message)
    {
        sse.Data(w =>
        {
            w.WriteStartObject();
            w.WritePropertyName("error");
            OpenAiError.WriteObject(w, failure.Message ?? message, failure.Type, failure.Param, failure.Code);
            w.WriteEndObject();
        });
        sse.Data("[DONE]"u8);
        await sse.FlushAsync(CancellationToken.None);
    }

    void Head(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
    }
}
