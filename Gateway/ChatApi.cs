using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.ServiceDefaults.Tasks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.Gateway;

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
        DateTimeOffset? RateLimitedUntil);

    static async Task<Results<Accepted<ChatAccepted>, ValidationProblem, ProblemHttpResult>> PostChat(
        HttpRequest http, ITaskStore store, IWorkDispatcher dispatcher,
        IOptions<GatewayOptions> gateway, IOptions<ModelOptions> models, TimeProvider clock, ILogger<ChatRequest> logger)
    {
        var (body, problem) = await JsonBody.ReadObjectAsync(http, gateway.Value.MaxRequestBytes, http.HttpContext.RequestAborted);
        if (problem is not null)
            return problem;
        var (request, errors) = ChatRequest.Parse(body);
        if (request is null)
            return TypedResults.ValidationProblem(errors, detail: "invalid field(s): " + string.Join(", ", errors.Keys));

        var priority = request.Priority ?? 0;
        var queue = WorkQueues.Chat.QueueFor(priority);
        var task = new TaskRecord
        {
            TaskId = Ids.New(),
            SessionId = request.SessionId ?? Ids.New(),
            State = TaskState.Queued,
            Model = request.Model ?? models.Value.LlmModel,
            Priority = priority,
            UserId = request.UserId,
            CreatedAt = clock.GetUtcNow(),
        };

        // From here on the request is accepted or visibly failed, whatever the client does with its connection.
        try
        {
            var created = await store.CreateAsync(task, StreamEvents.Queued(task.TaskId, task.Model, priority, queue), CancellationToken.None);
            if (created != CreateResult.Created)
                return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Session busy",
                    detail: $"session '{task.SessionId}' already has a task that has not ended; wait for its done, error or cancelled event, or cancel it",
                    extensions: new Dictionary<string, object?> { ["field"] = "session_id" });
        }
        catch (RedisException e)
        {
            logger.LogError(e, "Task store unavailable; chat not accepted");
            return Unavailable(http.HttpContext.Response, "the task store (Redis) is unavailable; nothing was queued");
        }

        try
        {
            await dispatcher.DispatchAsync(new ChatRequested
            {
                TaskId = task.TaskId,
                SessionId = task.SessionId,
                Message = request.Message,
                Model = task.Model,
                SystemPrompt = request.SystemPrompt,
                Priority = priority,
                UserId = request.UserId,
                AcceptedAt = task.CreatedAt,
            }, WorkQueues.Chat, priority, CancellationToken.None);
        }
        catch (BrokerUnavailableException e)
        {
            logger.LogError(e, "Broker unavailable; task {TaskId} not queued", task.TaskId);
            const string reason = "the message broker is unavailable; the request was not queued";
            await store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = task.SessionId, State = TaskState.Failed, Error = reason },
                StreamEvents.Error(task.TaskId, null, reason), CancellationToken.None);
            return Unavailable(http.HttpContext.Response, reason);
        }

        logger.LogInformation("Queued task {TaskId} for session {SessionId} on {Queue}", task.TaskId, task.SessionId, queue);
        return TypedResults.Accepted($"/chat/{task.TaskId}",
            new ChatAccepted("queued", task.TaskId, task.SessionId, StreamApi.StreamUrl(task.SessionId), $"/chat/{task.TaskId}", queue));
    }

    static async Task<Results<Ok<ChatStatus>, ProblemHttpResult>> GetChat(string task_id, ITaskStore store, CancellationToken cancellationToken)
    {
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null)
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown task",
                detail: $"no task '{task_id}': it never existed or its result has expired");

        return TypedResults.Ok(new ChatStatus(
            task.TaskId, task.SessionId, task.State.ToWire(), task.Model, task.Priority, task.Attempt,
            task.CreatedAt, task.StartedAt, task.FinishedAt, task.Result, task.Error, task.FinishReason, task.Usage,
            task.UserId, StreamApi.StreamUrl(task.SessionId), task.RateLimitedUntil));
    }

    public sealed record ChatCancelled(string TaskId, string Status);

    static async Task<Results<Ok<ChatCancelled>, ProblemHttpResult>> CancelChat(
        string task_id, ITaskStore store, TaskCancellation cancellation, ILogger<ChatRequest> logger, CancellationToken cancellationToken)
    {
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null)
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown task",
                detail: $"no task '{task_id}': it never existed or its result has expired");

        // Marking the task first fences the worker off (its next token is refused), then the signal stops the provider call.
        var cancelled = await store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = task.SessionId, State = TaskState.Cancelled },
            StreamEvents.Cancelled(task.TaskId), CancellationToken.None);
        if (cancelled)
        {
            await cancellation.SignalAsync(task.TaskId);
            logger.LogInformation("Cancelled task {TaskId} ({State})", task.TaskId, task.State.ToWire());
            return TypedResults.Ok(new ChatCancelled(task.TaskId, "cancelled"));
        }

        var now = await store.GetAsync(task_id, CancellationToken.None);
        return now?.State == TaskState.Cancelled
            ? TypedResults.Ok(new ChatCancelled(task.TaskId, "cancelled"))
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Task already ended",
                detail: $"task '{task_id}' has already {now?.State.ToWire() ?? "ended"}; there is nothing to cancel");
    }

    static ProblemHttpResult Unavailable(HttpResponse response, string detail)
    {
        response.Headers.RetryAfter = "5";
        return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable", detail: detail,
            extensions: new Dictionary<string, object?> { ["retry_after_seconds"] = 5 });
    }
}
