using System.Runtime.CompilerServices;
using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Intake;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;
using RedisException = StackExchange.Redis.RedisException;

namespace LlmStream.Gateway.OpenAi;

/// <summary>
/// /v1: the OpenAI chat-completions API in front of the queue, so any OpenAI SDK gets queueing, priority and
/// the cluster's rate limits. Requests go through the bus and the workers like /chat; the answer is read from
/// the task's stream and written in OpenAI's exact wire format.
/// </summary>
public static class OpenAiApi
{
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").WithTags("OpenAI-compatible");
        v1.MapGet("/models", ListModels).WithSummary("Models this gateway serves");
        v1.MapGet("/models/{model}", RetrieveModel).WithSummary("One model this gateway serves (404 in OpenAI's error format otherwise)");
        v1.MapPost("/chat/completions", CreateChatCompletion)
            .WithSummary("Create a chat completion (streaming or not), queued with priority (X-Priority header or priority field)");
        v1.MapOpenAiEmbeddings();
        return app;
    }

    static object Model(string id) => new { id, @object = "model", created = 0, owned_by = "llmstream" };

    static IResult ListModels(ModelCatalog catalog) => Results.Json(new { @object = "list", data = catalog.Names.Select(Model) });

    static async Task RetrieveModel(string model, HttpContext http, ModelCatalog catalog)
    {
        if (catalog.Lists(model))
            await http.Response.WriteAsJsonAsync(Model(model));
        else
            await OpenAiError.ModelNotFoundAsync(http, model);
    }

    static async Task CreateChatCompletion(HttpContext http, ChatIntake intake, ITaskStore store, StreamSignals signals, TaskCancellation cancellation,
        IOptions<GatewayOptions> gateway, IOptions<ModelOptions> models, ModelCatalog catalog, PromptBudget budget, GracefulStop stop,
        TimeProvider clock, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(OpenAiApi).FullName!);
        var (body, problem) = await JsonBody.ReadObjectAsync(http.Request, gateway.Value.MaxRequestBytes, http.RequestAborted);
        if (problem is not null)
        {
            await OpenAiError.WriteAsync(http, problem.StatusCode, problem.ProblemDetails.Detail ?? "invalid request body", null);
            return;
        }
        var (request, error) = OpenAiChatRequest.Parse(body, http.Request.Headers["X-Priority"].FirstOrDefault(), models.Value.LlmModel);
        if (request is null)
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, error!.Value.Message, error.Value.Param);
            return;
        }

        var message = new ChatRequested
        {
            TaskId = Ids.New(),
            SessionId = Ids.New(),
            Message = request.Conversation.LastOrDefault(t => t.Role == "user")?.Content ?? request.Conversation[^1].Content,
            Model = request.Model,
            Priority = request.Priority,
            UserId = request.User,
            ApiKeyName = http.ApiKeyName(),
            AcceptedAt = clock.GetUtcNow(),
            Conversation = request.Conversation,
            Temperature = request.Temperature,
            TopP = request.TopP,
            MaxTokens = request.MaxTokens,
            Stop = request.Stop,
            Tools = request.Tools,
            ToolChoice = request.ToolChoice,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            Seed = request.Seed,
            ParallelToolCalls = request.ParallelToolCalls,
            ResponseFormat = request.ResponseFormat,
            ReasoningEffort = request.ReasoningEffort,
            Store = request.Store,
            Metadata = request.Metadata,
            EndUserId = request.User,
        };
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is not null && !ChatIntake.IsValidIdempotencyKey(idempotencyKey))
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, "the Idempotency-Key header must be 1 to 255 visible ASCII characters", "Idempotency-Key");
            return;
        }
        if (!catalog.Serves(message.Model))
        {
            await OpenAiError.ModelNotFoundAsync(http, message.Model);
            return;
        }
        var (promptTokens, refusal) = await budget.CheckAsync(message, "messages", http.RequestAborted);
        if (refusal is not null)
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, refusal.Message, refusal.Param, code: refusal.Code);
            return;
        }
        message = message with { PromptTokens = promptTokens };
        var result = await intake.SubmitAsync(message, idempotencyKey, http.IdempotencyScope(), ChatIntake.Fingerprint(http.Request, body));
        switch (result.Outcome)
        {
            case IntakeOutcome.Accepted or IntakeOutcome.Repeated:
                break;
            case IntakeOutcome.IdempotencyKeyReused:
                await OpenAiError.WriteAsync(http, StatusCodes.Status422UnprocessableEntity,
                    $"Idempotency-Key '{idempotencyKey}' was first used with another request; send that request again, or use a new key", "Idempotency-Key");
                return;
            case IntakeOutcome.StoreUnavailable or IntakeOutcome.BrokerDown:
                http.Response.Headers.RetryAfter = "5";
                await OpenAiError.WriteAsync(http, StatusCodes.Status503ServiceUnavailable,
                    result.Outcome == IntakeOutcome.StoreUnavailable ? ChatIntake.StoreDown : ChatIntake.BrokerDown, null, "server_error", "service_unavailable");
                return;
            default:
                http.Response.Headers.RetryAfter = "5";
                http.Response.Headers["X-LlmStream-Task-Id"] = result.TaskId; // its record says failed
                await OpenAiError.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, ChatIntake.BrokerDown, null, "server_error", "service_unavailable");
                return;
        }

        // A repeated Idempotency-Key follows the first request's task: the same answer, no second generation.
        http.Response.Headers["X-LlmStream-Task-Id"] = result.TaskId;
        // A stopping gateway waits for the answer at most SHUTDOWN_TIMEOUT.
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stop.Expired);
        var completion = new CompletionWriter($"chatcmpl-{result.TaskId}", clock.GetUtcNow().ToUnixTimeSeconds(), message.Model);
        if (request.Stream)
        {
            // A repeat (same Idempotency-Key) joins the task where it is: the attempt running now, not the text of
            // attempts a retry already replaced, which this format could not take back.
            var fromAttempt = result.Outcome == IntakeOutcome.Repeated
                ? Math.Max(1, (await store.GetAsync(result.TaskId, http.RequestAborted))?.Attempt ?? 1)
                : 1;
            var events = Follow(store, signals, result.SessionId, gateway.Value.KeepAlive, waiting.Token);
            await completion.StreamAsync(http, events, request.IncludeUsage, fromAttempt, store, result.TaskId, async reason =>
            {
                // Only this request's clients read the task (this one, and repeats with its key): ending it stops the
                // retry, so no second answer runs that nobody reads.
                try
                {
                    if (await store.FailAsync(result.TaskId, result.SessionId, reason,
                            failure: new FailureDetail(502, "server_error", "provider_unavailable", null, reason, Retryable: true)))
                    {
                        await cancellation.SignalAsync(result.TaskId);
                        logger.LogWarning("Task {TaskId} failed mid-answer on a /v1 stream; ended instead of retried", result.TaskId);
                    }
                }
                catch (Exception e) when (e.IsRedisFailure())
                {
                    // The client still gets its error event; the retry then runs to its end unread.
                    logger.LogWarning(e, "Task {TaskId} failed mid-answer on a /v1 stream and could not be ended", result.TaskId);
                }
            });
        }
        else
        {
            await completion.WriteWholeAsync(http, Follow(store, signals, result.SessionId, null, waiting.Token), store, result.TaskId);
        }
    }

    /// <summary>
    /// The task's events until its terminal one; the session belongs to this request (and its repeats) alone. With
    /// <paramref name="keepAlive"/>, a wait that long with nothing new yields a keep-alive entry (no data).
    /// </summary>
    static async IAsyncEnumerable<StreamEntry> Follow(ITaskStore store, StreamSignals signals, string sessionId, TimeSpan? keepAlive,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var watch = signals.Watch(sessionId);
        var last = "0";
        while (true)
        {
            var entries = await watch.ReadAfterAsync(store, last, 256, cancellationToken);
            foreach (var entry in entries)
            {
                yield return entry;
                last = entry.Id;
                if (entry.IsTerminal)
                    yield break;
            }
            if (entries.Count > 0)
                continue;
            var woken = await watch.WaitAsync(keepAlive ?? TimeSpan.FromSeconds(15), cancellationToken);
            if (!woken && keepAlive is not null)
                yield return CompletionWriter.KeepAlive;
        }
    }
}

/// <summary>OpenAI's error object: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public static class OpenAiError
{
    public static Task WriteAsync(HttpContext http, int status, string message, string? param, string? type = null, string? code = null)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new
        {
            error = new
            {
                message,
                type = type ?? (status >= 500 ? "server_error" : "invalid_request_error"),
                param,
                code,
            },
        });
    }

    /// <summary>OpenAI's answer for a model it does not serve; its SDKs do not retry a 404.</summary>
    public static Task ModelNotFoundAsync(HttpContext http, string model) =>
        WriteAsync(http, StatusCodes.Status404NotFound, $"The model '{model}' does not exist or you do not have access to it.", "model", code: "model_not_found");

    /// <summary>A stopping gateway's answer: 503 with Retry-After, which OpenAI's SDKs retry (with the same Idempotency-Key).</summary>
    public static Task WriteStoppingAsync(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "1";
        http.Response.Headers.Connection = "close";
        return WriteAsync(http, StatusCodes.Status503ServiceUnavailable,
            "this gateway is stopping: repeat the request (with the same Idempotency-Key to join the task already running)", null, "server_error", "service_unavailable");
    }

    /// <summary>How a task that ended without an answer reads to an OpenAI client.</summary>
    public static FailureDetail FailureOf(TaskRecord? task) => task switch
    {
        { State: TaskState.Cancelled } => new FailureDetail(409, "invalid_request_error", "cancelled", null, "the request was cancelled"),
        { Failure: { } failure } => failure,
        { Error: { } error } => FailureDetail.Internal with { Message = error },
        _ => FailureDetail.Internal with { Message = "the task ended without an answer" },
    };

    /// <summary>
    /// A task that ended without an answer, as the response: its status and error object, and what OpenAI's SDKs read to
    /// decide on a retry: <c>x-should-retry: false</c> when no retry can mend it, <c>Retry-After</c> when one may.
    /// </summary>
    public static Task WriteEndedAsync(HttpContext http, TaskRecord? task)
    {
        var failure = FailureOf(task);
        if (failure.Retryable)
            http.Response.Headers.RetryAfter = "5";
        else
            http.Response.Headers["x-should-retry"] = "false";
        return WriteAsync(http, failure.Status, failure.Message ?? task?.Error ?? "the task ended without an answer", failure.Param, failure.Type, failure.Code);
    }

    public static void WriteObject(System.Text.Json.Utf8JsonWriter w, string message, string type, string? param, string? code)
    {
        w.WriteStartObject();
        w.WriteString("message", message);
        w.WriteString("type", type);
        if (param is null) w.WriteNull("param"); else w.WriteString("param", param);
        if (code is null) w.WriteNull("code"); else w.WriteString("code", code);
        w.WriteEndObject();
    }
}
