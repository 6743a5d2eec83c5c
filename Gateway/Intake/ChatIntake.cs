using System.Diagnostics;
using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Providers;
using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.Intake;

/// <summary>BrokerUnavailable: the send failed and the task's record says so; BrokerDown: refused before anything was written.</summary>
public enum IntakeOutcome { Accepted, Repeated, SessionBusy, StoreUnavailable, BrokerUnavailable, BrokerDown, IdempotencyKeyReused }

/// <summary>What became of a request; on Repeated the ids are those of the task the Idempotency-Key is bound to.</summary>
public readonly record struct IntakeResult(IntakeOutcome Outcome, string TaskId, string SessionId, string Queue = "");

/// <summary>A request turned away before anything was written, in words each API renders in its own format.</summary>
/// <param name="Field">What is at fault: a body field (model, message, messages, max_tokens) or a header (Idempotency-Key).</param>
/// <param name="Code">OpenAI's code for it (model_not_found, context_length_exceeded...), when there is one.</param>
public sealed record IntakeRefusal(int Status, string Field, string? Code, string Title, string Message);

/// <summary>A request admitted (its intake result), or refused before anything was written.</summary>
public readonly record struct Admission(IntakeResult Result, IntakeRefusal? Refusal);

/// <summary>
/// Accepts a chat for every API (/chat and /v1): the task record and queued event first, then the message
/// on the queue its priority selects. From the first write on, the request is either queued or visibly failed, and a
/// failed one never reaches the model.
/// </summary>
public sealed class ChatIntake(
    ITaskStore store, IWorkDispatcher dispatcher, Outages outages, ModelCatalog catalog, PromptBudget budget, LlmStreamMetrics metrics, ILogger<ChatIntake> logger)
{
    public const string BrokerDown = "the message broker is unavailable; the request was not queued";
    public const string StoreDown = "the task store (Redis) is unavailable; nothing was queued";

    /// <summary>Idempotency-Key: 1 to 255 visible ASCII characters.</summary>
    public static bool IsValidIdempotencyKey(string key) => key.Length is > 0 and <= 255 && key.All(c => c is > ' ' and <= '~');

    /// <summary>A request's fingerprint for Idempotency-Key: its path and exact body.</summary>
    public static string Fingerprint(HttpRequest http, System.Text.Json.JsonElement body) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(http.Path + "\n" + body.GetRawText())))[..32];

    /// <summary>
    /// The steps every chat API takes, in one place: the Idempotency-Key header, the model (the simulated model serves
    /// only what it lists), the prompt counted once and held to the model's context and the token limit, then
    /// <see cref="SubmitAsync"/> with the count in the message.
    /// </summary>
    /// <param name="promptField">What names the prompt in the API's words: message (/chat) or messages (/v1).</param>
    /// <param name="response">A /v1/responses request's parameters (JSON), kept in the task's record.</param>
    public async Task<Admission> AdmitAsync(HttpRequest http, System.Text.Json.JsonElement body, ChatRequested message, string promptField, string? response = null)
    {
        var idempotencyKey = http.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is not null && !IsValidIdempotencyKey(idempotencyKey))
            return Refused(400, "Idempotency-Key", null, "Invalid Idempotency-Key", "the Idempotency-Key header must be 1 to 255 visible ASCII characters");
        if (!catalog.Serves(message.Model))
            return Refused(404, "model", "model_not_found", "Unknown model",
                Problems.UnknownModelDetail(message.Model, catalog));
        var (promptTokens, refusal) = await budget.CheckAsync(message, promptField, http.HttpContext.RequestAborted);
        if (refusal is not null)
            return Refused(400, refusal.Param, refusal.Code, "Prompt refused", refusal.Message);
        return new Admission(await SubmitAsync(message with { PromptTokens = promptTokens }, idempotencyKey, http.HttpContext.IdempotencyScope(), Fingerprint(http, body), response), null);
    }

    static Admission Refused(int status, string field, string? code, string title, string message) =>
        new(default, new IntakeRefusal(status, field, code, title, message));

    /// <param name="idempotencyKey">Repeating a request with the same key (within <paramref name="scope"/>) returns the first task instead of
    /// starting another; the same key with another request (another <paramref name="fingerprint"/>) is refused.</param>
    public async Task<IntakeResult> SubmitAsync(ChatRequested request, string? idempotencyKey = null, string scope = "anonymous", string fingerprint = "", string? response = null)
    {
        // Every line logged for this intake carries the ids, as the worker's lines for the same task do.
        using var logScope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId, ["SessionId"] = request.SessionId });
        Activity.Current.TagTask(request.TaskId, request.SessionId);
        var address = WorkQueues.Chat.For(request.Priority); // the queue, named once for this request
        // Known to be down: refused at once, before anything is written, instead of after a client timeout.
        if (outages.StoreRefuses(request.SessionId))
            return new IntakeResult(IntakeOutcome.StoreUnavailable, request.TaskId, request.SessionId);
        if (outages.Broker.Refuses())
            return new IntakeResult(IntakeOutcome.BrokerDown, request.TaskId, request.SessionId);
        if (idempotencyKey is not null)
        {
            try
            {
                if (await store.BindIdempotencyKeyAsync(scope, idempotencyKey, new IdempotencyBinding(request.TaskId, request.SessionId, fingerprint), CancellationToken.None) is { } bound)
                {
                    if (bound.Fingerprint.Length > 0 && fingerprint.Length > 0 && bound.Fingerprint != fingerprint)
                        return new IntakeResult(IntakeOutcome.IdempotencyKeyReused, bound.TaskId, bound.SessionId);
                    logger.LogInformation("Idempotency-Key repeated: task {TaskId}", bound.TaskId);
                    return new IntakeResult(IntakeOutcome.Repeated, bound.TaskId, bound.SessionId, address.Queue);
                }
            }
            catch (Exception e) when (e.IsRedisFailure())
            {
                outages.StoreOf(request.SessionId).Failed(e);
                return new IntakeResult(IntakeOutcome.StoreUnavailable, request.TaskId, request.SessionId);
            }
        }

        var outcome = await CreateAndDispatch(request, address, response);
        if (outcome != IntakeOutcome.Accepted && idempotencyKey is not null)
        {
            try { await store.ReleaseIdempotencyKeyAsync(scope, idempotencyKey, CancellationToken.None); }
            catch (Exception e) when (e.IsRedisFailure()) { } // it expires with the retention period
        }
        return new IntakeResult(outcome, request.TaskId, request.SessionId, address.Queue);
    }

    async Task<IntakeOutcome> CreateAndDispatch(ChatRequested request, WorkAddress address, string? response)
    {
        var queue = address.Queue;
        var task = new TaskRecord
        {
            TaskId = request.TaskId,
            SessionId = request.SessionId,
            State = TaskState.Queued,
            Model = request.Model,
            Priority = request.Priority,
            UserId = request.UserId,
            ApiKeyName = request.ApiKeyName,
            // A /chat message is half of the turn a later task of its session remembers; /v1 requests carry their whole conversation.
            Message = request.Conversation is null ? request.Message : null,
            Response = response,
            CreatedAt = request.AcceptedAt,
        };
        try
        {
            var created = await store.CreateAsync(task, StreamEvents.Queued(task.TaskId, task.Model, task.Priority, queue), CancellationToken.None);
            outages.StoreOf(task.SessionId).Succeeded();
            if (created != CreateResult.Created)
                return IntakeOutcome.SessionBusy;
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            outages.StoreOf(task.SessionId).Failed(e);
            return IntakeOutcome.StoreUnavailable;
        }

        try
        {
            await outages.DispatchAsync(dispatcher, request, address);
        }
        catch (BrokerUnavailableException e)
        {
            if (await UnconfirmedSend.RefusedAsync(e, task.TaskId, logger,
                    () => store.WithdrawAsync(task.TaskId, task.SessionId, BrokerDown),
                    async () => (await store.GetAsync(task.TaskId, CancellationToken.None))?.State.ToWire()))
                return IntakeOutcome.BrokerUnavailable;
        }

        metrics.ChatAccepted(queue);
        // Debug: one line per accepted request is a tenth of the intake's CPU; the worker's lines name the task when it starts and ends.
        logger.LogDebug("Queued task {TaskId} for session {SessionId} on {Queue}", task.TaskId, task.SessionId, queue);
        return IntakeOutcome.Accepted;
    }
}
