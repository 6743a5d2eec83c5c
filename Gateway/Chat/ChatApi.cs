using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Intake;
using LlmStream.Gateway.Streaming;
using LlmStream.Providers;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Chat;

/// <summary>POST /chat queues a generation and answers at once; GET /chat/{task_id} reports on it.</summary>
public static class ChatApi
{
    public static IEndpointRouteBuilder MapChatApi(this IEndpointRouteBuilder app)
    {
        var chat = app.MapGroup("/chat").WithTags("Chat");
        chat.MapPost("/", PostChat)
            .Accepts<ChatRequest>("application/json")
            .WithSummary("Queue a chat generation")
            .WithDescription("Answers 202 with the task and session ids once the broker has confirmed the message; tokens stream from stream_url.");
        chat.MapGet("/{task_id}", GetChat).WithSummary("Status and result of a chat task");
        chat.MapDelete("/{task_id}", CancelChat)
            .WithSummary("Cancel a chat task")
            .WithDescription("A queued task never starts; a running generation stops at the provider. The stream ends with a cancelled event.");
        return app;
    }

    public sealed record ChatAccepted(string Status, string TaskId, string SessionId, string StreamUrl, string StatusUrl, string Queue);

    public sealed record ChatStatus(
        string TaskId, string SessionId, string Status, string Model, int Priority, int Attempt,
        DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt,
        string? Result, string? Error, string? FinishReason, TokenUsage? Usage, string? UserId, string StreamUrl,
        DateTimeOffset? RateLimitedUntil, string? ApiKey, string? ErrorCode = null, bool? Retryable = null, int HistoryTurns = 0);

    static async Task<Results<Accepted<ChatAccepted>, ValidationProblem, ProblemHttpResult>> PostChat(
        HttpRequest http, ChatIntake intake, Outages outages, ITaskStore store, IOptions<GatewayOptions> gateway, IOptions<ModelOptions> models, TimeProvider clock)
    {
        var (body, problem) = await JsonBody.ReadObjectAsync(http, gateway.Value.MaxRequestBytes, http.HttpContext.RequestAborted);
        if (problem is not null)
            return problem;
        var (request, errors) = ChatRequest.Parse(body);
        if (request is null)
            return TypedResults.ValidationProblem(errors, detail: "invalid field(s): " + string.Join(", ", errors.Keys));

        if (request.SessionId is { } chosen && !await http.HttpContext.CanUseSessionAsync(store, chosen, http.HttpContext.RequestAborted))
            return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Session of another key",
                detail: $"session '{chosen}' was started with another API key; choose another session_id or leave it out",
                extensions: new Dictionary<string, object?> { ["field"] = "session_id" });

        var sessionId = request.SessionId ?? outages.NewId();
        var message = new ChatRequested
        {
            TaskId = Ids.NewTask(sessionId),
            SessionId = sessionId,
            Message = request.Message,
            Model = request.Model ?? models.Value.LlmModel,
            SystemPrompt = request.SystemPrompt,
            Priority = request.Priority ?? 0,
            UserId = request.UserId,
            History = request.History,
            ApiKeyName = http.HttpContext.ApiKeyName(),
            AcceptedAt = clock.GetUtcNow(),
        };
        var admission = await intake.AdmitAsync(http, body, message, "message");
        if (admission.Refusal is { } refusal)
            return Problems.Refused(refusal);
        var result = admission.Result;
        return result.Outcome switch
        {
            IntakeOutcome.Accepted or IntakeOutcome.Repeated => TypedResults.Accepted($"/chat/{result.TaskId}", new ChatAccepted("queued", result.TaskId, result.SessionId,
                StreamApi.StreamUrl(result.SessionId), $"/chat/{result.TaskId}", result.Queue)),
            IntakeOutcome.SessionBusy => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Session busy",
                detail: $"session '{message.SessionId}' already has a task that has not ended; wait for its done, error or cancelled event, or cancel it",
                extensions: new Dictionary<string, object?> { ["field"] = "session_id" }),
            IntakeOutcome.IdempotencyKeyReused => TypedResults.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "Idempotency-Key reused",
                detail: $"Idempotency-Key '{http.Headers["Idempotency-Key"]}' was first used with another request (task {result.TaskId}); send that request again, or use a new key",
                extensions: new Dictionary<string, object?> { ["field"] = "Idempotency-Key" }),
            IntakeOutcome.StoreUnavailable => Problems.Unavailable(http.HttpContext.Response, ChatIntake.StoreDown),
            IntakeOutcome.BrokerDown => Problems.Unavailable(http.HttpContext.Response, ChatIntake.BrokerDown),
            // The task id names the record that says so: GET /chat/{id} shows it failed, and it never reaches the model.
            _ => Problems.Unavailable(http.HttpContext.Response, ChatIntake.BrokerDown, result.TaskId),
        };
    }

    static async Task<Results<Ok<ChatStatus>, ProblemHttpResult>> GetChat(string task_id, HttpContext http, ITaskStore store, CancellationToken cancellationToken)
    {
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null || !http.CanSee(task.ApiKeyName))
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown task",
                detail: $"no task '{task_id}': it never existed or its result has expired");

        return TypedResults.Ok(new ChatStatus(
            task.TaskId, task.SessionId, task.State.ToWire(), task.Model, task.Priority, task.Attempt,
            task.CreatedAt, task.StartedAt, task.FinishedAt, task.Result, task.Error, task.FinishReason, task.Usage,
            task.UserId, StreamApi.StreamUrl(task.SessionId), task.RateLimitedUntil, task.ApiKeyName,
            task.Failure?.Code, task.State == TaskState.Failed ? task.Failure?.Retryable ?? false : null, task.HistoryTurns));
    }

    public sealed record ChatCancelled(string TaskId, string Status);

    static async Task<Results<Ok<ChatCancelled>, ProblemHttpResult>> CancelChat(
        string task_id, HttpContext http, ITaskStore store, TaskCancellation cancellation, ILogger<ChatRequest> logger, CancellationToken cancellationToken)
    {
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null || !http.CanSee(task.ApiKeyName))
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown task",
                detail: $"no task '{task_id}': it never existed or its result has expired");

        if (await cancellation.CancelAsync(store, task.TaskId, task.SessionId))
        {
            logger.LogInformation("Cancelled task {TaskId} ({State})", task.TaskId, task.State.ToWire());
            return TypedResults.Ok(new ChatCancelled(task.TaskId, "cancelled"));
        }

        var now = await store.GetAsync(task_id, CancellationToken.None);
        return now?.State == TaskState.Cancelled
            ? TypedResults.Ok(new ChatCancelled(task.TaskId, "cancelled"))
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Task already ended",
                detail: $"task '{task_id}' has already {now?.State.ToWire() ?? "ended"}; there is nothing to cancel");
    }
}
