using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Streaming;
using LlmStream.Gateway.Intake;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;

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
        v1.MapResponses();
        return app;
    }

    /// <summary>
    /// Answers, in OpenAI's words, a request the intake refused or could not queue; false when it was accepted or
    /// repeated (an Idempotency-Key's first task), for the caller to answer.
    /// </summary>
    internal static async Task<bool> WriteNotAdmittedAsync(HttpContext http, Admission admission, string model)
    {
        if (admission.Refusal is { } refusal)
        {
            // OpenAI's own words for a model it does not serve; the others as the intake put them.
            if (refusal.Code == "model_not_found")
                await OpenAiError.ModelNotFoundAsync(http, model);
            else
                await OpenAiError.WriteAsync(http, refusal.Status, refusal.Message, refusal.Field, code: refusal.Code);
            return true;
        }
        var result = admission.Result;
        switch (result.Outcome)
        {
            case IntakeOutcome.Accepted or IntakeOutcome.Repeated:
                return false;
            case IntakeOutcome.IdempotencyKeyReused:
                await OpenAiError.WriteAsync(http, StatusCodes.Status422UnprocessableEntity,
                    $"Idempotency-Key '{http.Request.Headers["Idempotency-Key"]}' was first used with another request; send that request again, or use a new key", "Idempotency-Key");
                return true;
            case IntakeOutcome.StoreUnavailable or IntakeOutcome.BrokerDown:
                http.Response.Headers.RetryAfter = "5";
                await OpenAiError.WriteAsync(http, StatusCodes.Status503ServiceUnavailable,
                    result.Outcome == IntakeOutcome.StoreUnavailable ? ChatIntake.StoreDown : ChatIntake.BrokerDown, null, "server_error", "service_unavailable");
                return true;
            default:
                http.Response.Headers.RetryAfter = "5";
                http.Response.Headers["X-LlmStream-Task-Id"] = result.TaskId; // its record says failed
                await OpenAiError.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, ChatIntake.BrokerDown, null, "server_error", "service_unavailable");
                return true;
        }
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

    static async Task CreateChatCompletion(HttpContext http, ChatIntake intake, Outages outages, ITaskStore store, StreamSignals signals, TaskCancellation cancellation,
        IOptions<GatewayOptions> gateway, IOptions<ModelOptions> models, GracefulStop stop,
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

        var sessionId = outages.NewId();
        var message = new ChatRequested
        {
            TaskId = Ids.NewTask(sessionId),
            SessionId = sessionId,
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
        var admission = await intake.AdmitAsync(http.Request, body, message, "messages");
        if (await WriteNotAdmittedAsync(http, admission, message.Model))
            return;
        var result = admission.Result;

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
            var events = StreamFollower.FollowAsync(store, signals, result.SessionId, "0", gateway.Value.KeepAlive, waiting.Token);
            await completion.StreamAsync(http, events, request.IncludeUsage, fromAttempt, store, result.TaskId, async () =>
            {
                // Only this request's clients read the task (this one, and repeats with its key): ending it stops the
                // retry, so no second answer runs that nobody reads.
                try
                {
                    if (await cancellation.FailMidAnswerAsync(store, result.TaskId, result.SessionId))
                    {
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
            await completion.WriteWholeAsync(http, StreamFollower.FollowAsync(store, signals, result.SessionId, "0", gateway.Value.KeepAlive, waiting.Token),
                store, result.TaskId);
        }
    }
}
