using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Intake;
using LlmStream.Gateway.Streaming;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.OpenAi;

/// <summary>
/// /v1/responses: OpenAI's Responses API on the queue, with background mode, resume and cancel for every provider. A
/// response is a task: it goes through the intake, the queue its priority selects, the rate limits and the workers as
/// /chat does, and the worker calls the provider's chat completions. Its events are rendered from the task's stream
/// (<see cref="ResponseEvents"/>); previous_response_id continues the earlier response's session, whose memory sends
/// the earlier turns.
/// </summary>
public static class ResponsesApi
{
    public static RouteGroupBuilder MapResponses(this RouteGroupBuilder v1)
    {
        v1.MapPost("/responses", Create)
            .WithSummary("Create a response (streaming, background or waited for), queued with priority (X-Priority header or metadata.priority)");
        v1.MapGet("/responses/{response_id}", Retrieve)
            .WithSummary("A response as it is now; with ?stream=true its events (resumable with starting_after)");
        v1.MapPost("/responses/{response_id}/cancel", Cancel).WithSummary("Cancel a response (in any state: an ended one is returned as it is)");
        v1.MapDelete("/responses/{response_id}", Delete).WithSummary("Delete a stored response (a running one is cancelled first)");
        return v1;
    }

    static async Task Create(HttpContext http, ChatIntake intake, Outages outages, ITaskStore store, StreamSignals signals,
        IOptions<GatewayOptions> gateway, IOptions<ModelOptions> models, GracefulStop stop, TimeProvider clock)
    {
        var (body, problem) = await JsonBody.ReadObjectAsync(http.Request, gateway.Value.MaxRequestBytes, http.RequestAborted);
        if (problem is not null)
        {
            await OpenAiError.WriteAsync(http, problem.StatusCode, problem.ProblemDetails.Detail ?? "invalid request body", null);
            return;
        }
        var (request, error) = OpenAiResponseRequest.Parse(body, http.Request.Headers["X-Priority"].FirstOrDefault(), models.Value.LlmModel);
        if (request is null)
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, error!.Value.Message, error.Value.Param);
            return;
        }

        // A continued response joins the session of the one it continues: the session's memory holds the earlier turns.
        string? sessionId = null;
        string? previousTaskId = null;
        if (request.PreviousResponseId is { } previousId)
        {
            if (await FindAsync(http, store, previousId) is not { } previous)
            {
                await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, $"Previous response with id '{previousId}' not found.",
                    "previous_response_id", code: "previous_response_not_found");
                return;
            }
            sessionId = previous.Task.SessionId;
            previousTaskId = previous.Task.TaskId;
        }
        sessionId ??= outages.NewId();

        var message = new ChatRequested
        {
            TaskId = Ids.NewTask(sessionId),
            SessionId = sessionId,
            Message = request.Input.LastOrDefault(t => t.Role == "user")?.Content ?? request.Input[^1].Content,
            Model = request.Model,
            SystemPrompt = request.Instructions,
            Priority = request.Priority,
            UserId = request.User,
            ApiKeyName = http.ApiKeyName(),
            AcceptedAt = clock.GetUtcNow(),
            Conversation = request.Input,
            PreviousTaskId = previousTaskId,
            RetryAfterOutput = false,
            Temperature = request.Temperature,
            TopP = request.TopP,
            MaxTokens = request.MaxOutputTokens,
            Tools = request.Tools,
            ToolChoice = request.ToolChoice,
            ParallelToolCalls = request.ParallelToolCalls,
            EndUserId = request.User,
        };
        var stored = new StoredResponse
        {
            Input = request.Input,
            Instructions = request.Instructions,
            PreviousTaskId = previousTaskId,
            Background = request.Background,
            Store = request.Store,
            Metadata = request.Metadata,
            Tools = request.ToolsJson,
            ToolChoice = request.ToolChoiceJson,
            Temperature = request.Temperature,
            TopP = request.TopP,
            MaxOutputTokens = request.MaxOutputTokens,
            ParallelToolCalls = request.ParallelToolCalls,
            User = request.User,
        };
        var admission = await intake.AdmitAsync(http.Request, body, message, "input", JsonSerializer.Serialize(stored, StreamEvents.Json));
        if (admission is { Refusal: null, Result.Outcome: IntakeOutcome.SessionBusy })
        {
            // 400, not 409: OpenAI's SDKs retry a 409 by themselves.
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest,
                $"Previous response with id '{request.PreviousResponseId}' has not finished, or another response continues it now: wait for it to end, or cancel it",
                "previous_response_id", code: "previous_response_in_progress");
            return;
        }
        if (await OpenAiApi.WriteNotAdmittedAsync(http, admission, message.Model))
            return;
        var result = admission.Result;

        // A repeated Idempotency-Key answers for the first request's response: the same events, no second generation.
        http.Response.Headers["X-LlmStream-Task-Id"] = result.TaskId;
        if ((await store.GetAsync(result.TaskId, CancellationToken.None) is { } task ? ResponseObject.Of(task) : null) is not { } response)
        {
            // A repeat whose first response is gone since (deleted, not stored, expired): nothing to answer for it.
            await OpenAiError.WriteAsync(http, StatusCodes.Status404NotFound,
                $"Response with id '{ResponseIds.Of(result.TaskId)}', which this Idempotency-Key was first used for, no longer exists.", "Idempotency-Key", code: "not_found");
            return;
        }
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stop.Expired);
        if (request.Stream)
            await StreamAsync(http, response, -1, store, signals, gateway.Value.KeepAlive, waiting.Token);
        else if (request.Background)
            await WriteAsync(http, response);
        else
            await WaitAndWriteAsync(http, response, store, signals, gateway.Value.KeepAlive, waiting.Token);
        if (!request.Store)
            await ForgetAsync(store, result.TaskId);
    }

    /// <summary>A response not to be stored is removed once its answer went out (the retention period removes it otherwise).</summary>
    static async Task ForgetAsync(ITaskStore store, string taskId)
    {
        try
        {
            await store.DeleteAsync(taskId, CancellationToken.None);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // It stays until the retention period ends; GET answers 404 for it all the same.
        }
    }

    static async Task Retrieve(string response_id, HttpContext http, ITaskStore store, StreamSignals signals,
        IOptions<GatewayOptions> gateway, GracefulStop stop)
    {
        var query = http.Request.Query;
        var stream = query["stream"].FirstOrDefault();
        if (stream is not (null or "true" or "false"))
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, $"'stream' must be true or false, not '{stream}'", "stream");
            return;
        }
        var startingAfter = -1;
        if (query["starting_after"].FirstOrDefault() is { } after
            && (!int.TryParse(after, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out startingAfter)))
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, $"'starting_after' must be a sequence number (an integer of 0 or more), not '{after}'", "starting_after");
            return;
        }
        if (await FindOrNotFoundAsync(http, store, response_id) is not { } response)
            return;
        if (stream == "true")
        {
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stop.Expired);
            await StreamAsync(http, response, startingAfter, store, signals, gateway.Value.KeepAlive, waiting.Token);
        }
        else
            await WriteAsync(http, response);
    }

    static async Task Cancel(string response_id, HttpContext http, ITaskStore store, TaskCancellation cancellation, ILoggerFactory loggers)
    {
        if (await FindOrNotFoundAsync(http, store, response_id) is not { } response)
            return;
        await EndAsync(response.Task, store, cancellation, loggers);
        await WriteAsync(http, ResponseObject.Of(await store.GetAsync(response.Task.TaskId, CancellationToken.None) ?? response.Task)!);
    }

    static async Task Delete(string response_id, HttpContext http, ITaskStore store, TaskCancellation cancellation, ILoggerFactory loggers)
    {
        if (await FindOrNotFoundAsync(http, store, response_id) is not { } response)
            return;
        await EndAsync(response.Task, store, cancellation, loggers);
        await store.DeleteAsync(response.Task.TaskId, CancellationToken.None);
        await http.Response.WriteAsJsonAsync(new { id = response.Id, @object = "response", deleted = true });
    }

    /// <summary>Cancels a response that has not ended (marking it first fences its worker off, then the signal stops the provider call).</summary>
    static async Task EndAsync(TaskRecord task, ITaskStore store, TaskCancellation cancellation, ILoggerFactory loggers)
    {
        if (!task.State.IsTerminal() && await cancellation.CancelAsync(store, task.TaskId, task.SessionId))
            loggers.CreateLogger(typeof(ResponsesApi).FullName!).LogInformation("Cancelled response task {TaskId} ({State})", task.TaskId, task.State.ToWire());
    }

    /// <summary>A stored response this caller may see; null for an unknown id, another key's, or one not stored.</summary>
    static async Task<ResponseObject?> FindAsync(HttpContext http, ITaskStore store, string responseId) =>
        ResponseIds.TaskOf(responseId) is { } taskId && await store.GetAsync(taskId, http.RequestAborted) is { } task && http.CanSee(task.ApiKeyName)
            && ResponseObject.Of(task) is { Request.Store: true } response
            ? response
            : null;

    static async Task<ResponseObject?> FindOrNotFoundAsync(HttpContext http, ITaskStore store, string responseId)
    {
        var response = await FindAsync(http, store, responseId);
        if (response is null)
            await OpenAiError.WriteAsync(http, StatusCodes.Status404NotFound, $"Response with id '{responseId}' not found.", "response_id", code: "not_found");
        return response;
    }

    static async Task WriteAsync(HttpContext http, ResponseObject response)
    {
        http.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(http.Response.Body);
        response.WriteCurrent(w);
    }

    /// <summary>A response that is neither streamed nor in the background: answered once its task ended.</summary>
    static async Task WaitAndWriteAsync(HttpContext http, ResponseObject response, ITaskStore store, StreamSignals signals, TimeSpan keepAlive, CancellationToken cancellationToken)
    {
        try
        {
            await RenderAsync(http, response, store, signals, keepAlive, static (_, _, _) => { }, _ => Task.CompletedTask, cancellationToken);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            return; // the client left; the response goes on, and GET /v1/responses/{id} reads it
        }
        catch (OperationCanceledException)
        {
            await OpenAiError.WriteStoppingAsync(http);
            return;
        }
        var task = await store.GetAsync(response.Task.TaskId, CancellationToken.None);
        if (task?.State == TaskState.Failed || task is null)
            await OpenAiError.WriteEndedAsync(http, task); // the status an SDK decides its retry on, as on /v1/chat/completions
        else
            await WriteAsync(http, ResponseObject.Of(task)!);
    }

    /// <summary>The task's events as the Responses API's, those numbered after <paramref name="startingAfter"/>.</summary>
    static async Task StreamAsync(HttpContext http, ResponseObject response, int startingAfter, ITaskStore store, StreamSignals signals,
        TimeSpan keepAlive, CancellationToken cancellationToken)
    {
        using var open = http.RequestServices.GetRequiredService<LlmStreamMetrics>().StreamOpened("responses");
        var sse = SseWriter.Begin(http.Response);
        void Emit(string type, int sequence, Action<Utf8JsonWriter> fields)
        {
            if (sequence > startingAfter)
                sse.Named(type, w =>
                {
                    w.WriteStartObject();
                    w.WriteString("type", type);
                    w.WriteNumber("sequence_number", sequence);
                    fields(w);
                    w.WriteEndObject();
                });
        }
        try
        {
            await RenderAsync(http, response, store, signals, keepAlive, Emit, async batch =>
            {
                if (batch.IsQuiet)
                    sse.KeepAlive();
                await sse.FlushAsync(http.RequestAborted);
            }, cancellationToken);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client left; the response goes on (POST /v1/responses/{id}/cancel stops it).
        }
        catch (OperationCanceledException)
        {
            // This gateway stops: the client resumes with starting_after on another.
            sse.Named("error", w =>
            {
                w.WriteStartObject();
                w.WriteString("type", "error");
                w.WriteString("code", "service_unavailable");
                w.WriteString("message", "this gateway is stopping; the response goes on: resume with GET /v1/responses/{id}?stream=true&starting_after=N");
                w.WriteNull("param");
                w.WriteEndObject();
            });
            await sse.FlushAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// Follows the response's task from its queued event and renders each of its events to <paramref name="emit"/> until
    /// its last; <paramref name="batchDone"/> after each batch read (or quiet interval). A retry spliced after text ends the task.
    /// </summary>
    static async Task RenderAsync(HttpContext http, ResponseObject response, ITaskStore store, StreamSignals signals, TimeSpan keepAlive,
        ResponseEvents.Emit emit, Func<StreamBatch, Task> batchDone, CancellationToken cancellationToken)
    {
        var renderer = new ResponseEvents(response);
        await foreach (var batch in StreamFollower.FollowAsync(store, signals, response.Task.SessionId, response.StreamAfter, keepAlive, cancellationToken))
        {
            foreach (var entry in batch.Entries)
            {
                using var data = JsonDocument.Parse(entry.Data);
                if (IsOf(data.RootElement, response))
                    renderer.Render(entry, data.RootElement, emit);
                if (renderer.Ended)
                    break;
            }
            await batchDone(batch);
            if (renderer.Ended)
                break;
        }
        if (renderer.Spliced)
            await EndSplicedAsync(http, store, response);
    }

    static bool IsOf(JsonElement data, ResponseObject response) =>
        data.TryGetProperty("task_id", out var id) && id.ValueEquals(response.Task.TaskId);

    /// <summary>A retry began after text went out: the task ends as the stream showed it, so the retry stops instead of answering unseen.</summary>
    static async Task EndSplicedAsync(HttpContext http, ITaskStore store, ResponseObject response)
    {
        try
        {
            await http.RequestServices.GetRequiredService<TaskCancellation>().FailMidAnswerAsync(store, response.Task.TaskId, response.Task.SessionId);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // The worker's own check fails it on its next attempt.
        }
    }
}
