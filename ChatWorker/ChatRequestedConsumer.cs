using System.Diagnostics;
using LlmStream.Contracts;
using LlmStream.Messaging.Workers;
using LlmStream.Providers;
using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using MassTransit;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>
/// Runs one chat generation: streams the completion from the provider and appends every token to the
/// session's stream. Idempotent on the task id: a message for a finished task is acknowledged and ignored,
/// and a new attempt is announced in the stream so clients drop the previous attempt's text.
/// </summary>
public sealed class ChatRequestedConsumer(
    ITaskStore store,
    ModelClients models,
    IRateLimiter rateLimiter,
    PromptTokens promptTokens,
    TaskCancellation cancellation,
    TokenBatcher tokenBatcher,
    ConversationMemory memory,
    WorkerActivity worker,
    IOptions<ModelOptions> modelOptions,
    IOptions<RetryOptions> retryOptions,
    IOptions<RateLimitOptions> rateLimitOptions,
    LlmStreamMetrics metrics,
    ILogger<ChatRequestedConsumer> logger) : IConsumer<ChatRequested>
{
    /// <summary>A Retry-After longer than this is cut short: the retry backoff goes on growing anyway.</summary>
    static readonly TimeSpan MaxRetryAfter = TimeSpan.FromSeconds(60);

    public async Task Consume(ConsumeContext<ChatRequested> context)
    {
        try
        {
            await Generate(context);
        }
        catch (Exception e) when (context.CancellationToken.IsCancellationRequested && !(e is OperationCanceledException c && c.CancellationToken == context.CancellationToken))
        {
            // Stopped with the worker (in the rate-limit wait, or in a store call): a cancellation, and the message goes back.
            throw new WorkerStoppingException($"the worker stopped ({e.GetType().Name})", context.CancellationToken);
        }
        catch (Exception e) when (e is not TransientProviderException && !context.CancellationToken.IsCancellationRequested
                                  && !(e.IsRedisFailure() && context.GetRetryAttempt() < retryOptions.Value.RetryLimit))
        {
            // Whatever ends this message for good (error queue, dead letters) also ends its task, so the session
            // gets its terminal event and can take new work. A task that already ended is left as it is.
            await TryFail(context.Message, $"the worker could not run the generation ({e.GetType().Name}: {ProviderFailure.FirstLine(e.Message)})");
            throw;
        }
    }

    /// <summary>The steps of one generation; each returns early when the task has ended or was cancelled meanwhile.</summary>
    async Task Generate(ConsumeContext<ChatRequested> context)
    {
        var request = context.Message;
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId, ["SessionId"] = request.SessionId });
        if (await IsStillWantedAsync(request, context.CancellationToken) is not { } task)
            return;
        if (request.RetryAfterOutput == false && task.Attempt > 0
            && (await store.LastAsync(request.SessionId, context.CancellationToken))?.Type == StreamEventTypes.Token)
        {
            // An earlier attempt (its worker died) streamed part of an answer that a stream may be showing now.
            await Fail(request, task.Attempt, FailureDetail.MidAnswer.Message!, FailureDetail.MidAnswer);
            return;
        }
        var prompt = request.PromptTokens ?? promptTokens.CountPrompt(request);
        var history = await memory.RecallAsync(request, prompt, request.MaxTokens ?? rateLimitOptions.Value.ExpectedCompletionTokens, context.CancellationToken);
        // Registered before the rate-limit wait, so DELETE also frees a task that waits for the limit.
        using var cancelled = cancellation.Register(request.TaskId);
        if (await ReserveAsync(request, prompt + history.Tokens, cancelled.Token, context.CancellationToken) is not { } reserved)
            return;
        if (await StartAttemptAsync(request, reserved, history.Turns, context.CancellationToken) is not { } attempt)
            return;
        if (await StreamAnswerAsync(context, attempt, reserved, history, cancelled.Token) is { } answer)
            await CompleteAsync(request, attempt, reserved, answer);
    }

    /// <summary>
    /// Looked up before anything is reserved: a message for a task that ended (cancelled while queued, or redelivered
    /// after it finished) takes nothing from the rate limit, and a live task never waits for a dead one's reservation.
    /// </summary>
    async Task<TaskRecord?> IsStillWantedAsync(ChatRequested request, CancellationToken cancellationToken)
    {
        if (await store.GetAsync(request.TaskId, cancellationToken) is { } task && !task.State.IsTerminal())
            return task;
        logger.LogInformation("Task {TaskId} has already ended or expired; message acknowledged without a new generation", request.TaskId);
        return null;
    }

    /// <summary>
    /// Waits (without polling) until the cluster-wide limits grant the prompt (counted by the gateway, in time linear in
    /// its length, with the session's turns sent before it) and the expected completion; the tokens reserved, or null
    /// when the task was cancelled meanwhile.
    /// </summary>
    async Task<int?> ReserveAsync(ChatRequested request, int prompt, CancellationToken cancelled, CancellationToken stopping)
    {
        var reserved = prompt + rateLimitOptions.Value.ExpectedCompletionTokens;
        using var waitToken = CancellationTokenSource.CreateLinkedTokenSource(stopping, cancelled);
        try
        {
            await WaitForRateLimit(request, reserved, waitToken.Token);
            return reserved;
        }
        catch (OperationCanceledException) when (cancelled.IsCancellationRequested)
        {
            logger.LogInformation("Task {TaskId} was cancelled while it waited for the rate limit", request.TaskId);
            return null;
        }
    }

    /// <summary>The next attempt, announced in the stream; null (and the reservation given back) when the task ended meanwhile.</summary>
    async Task<int?> StartAttemptAsync(ChatRequested request, int reserved, int historyTurns, CancellationToken cancellationToken)
    {
        var attempt = await store.StartAttemptAsync(request.TaskId, request.SessionId, worker.Id, historyTurns, cancellationToken);
        if (attempt is null)
        {
            await rateLimiter.TryReleaseAsync(request.Model, reserved, logger); // nothing was sent
            logger.LogInformation("Task {TaskId} has already ended or expired; message acknowledged without a new generation", request.TaskId);
            return null;
        }
        logger.LogInformation("Generating task {TaskId} with {Model}, attempt {Attempt}", request.TaskId, request.Model, attempt);
        return attempt;
    }

    /// <summary>
    /// Calls the provider and appends every token to the session's stream as it comes. The whole answer, or null when
    /// the attempt ended otherwise: cancelled, fenced off by a newer attempt, past LLM_TIMEOUT, or failed (a transient
    /// failure with retries left throws, for the retry policy).
    /// </summary>
    async Task<Answer?> StreamAnswerAsync(ConsumeContext<ChatRequested> context, int attempt, int reserved, ConversationMemory.Recalled history, CancellationToken cancelled)
    {
        var request = context.Message;
        // A child of the consume span: the provider's HTTP call inside it carries this trace in its traceparent header.
        using var activity = LlmStreamTelemetry.Source.StartActivity("chat.generate");
        activity.TagTask(request.TaskId, request.SessionId);
        activity?.SetTag(LlmStreamTelemetry.ModelTag, request.Model);
        activity?.SetTag(LlmStreamTelemetry.AttemptTag, attempt);
        var timeLimit = modelOptions.Value.LlmTimeout;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, cancelled);
        limit.CancelAfter(timeLimit);
        var answer = new Answer();
        var call = new ProviderCall(request.Model, metrics);
        // A call that stops early used its prompt and what it generated so far: the rest of the reservation goes back.
        Task GiveBackUnused() => rateLimiter.TrySettleAsync(request.Model, reserved, reserved - rateLimitOptions.Value.ExpectedCompletionTokens + answer.Tokens, logger);
        try
        {
            var tokens = tokenBatcher.Start(request.TaskId, request.SessionId, attempt);
            await foreach (var update in models.For(request.Model).GetStreamingResponseAsync(ProviderRequest.Messages(request, history.Messages), ProviderRequest.Options(request), limit.Token))
            {
                var first = answer.Tokens == 0;
                var token = answer.Add(update);
                if (token.Length > 0 && first)
                    call.FirstToken();
                if (token.Length > 0 && !tokens.Add(token))
                {
                    // Cancelled, or another attempt took over: leaving the loop cancels the provider call.
                    logger.LogInformation("Task {TaskId} attempt {Attempt} is no longer current; generation stopped", request.TaskId, attempt);
                    call.Ended("cancelled");
                    await GiveBackUnused();
                    return null;
                }
            }
            call.Ended("ok");
            metrics.TokensGenerated(request.Model, answer.Usage?.OutputTokenCount ?? answer.Tokens);
            if (await tokens.FlushAsync())
                return answer;
            logger.LogInformation("Task {TaskId} attempt {Attempt} is no longer current; its outcome is dropped", request.TaskId, attempt);
            return null;
        }
        catch (Exception) when (cancelled.IsCancellationRequested)
        {
            // DELETE /chat/{id}: the gateway already ended the task with a cancelled event.
            logger.LogInformation("Task {TaskId} was cancelled; the provider call stopped", request.TaskId);
            call.Ended("cancelled");
            await GiveBackUnused();
            return null;
        }
        catch (Exception e) when (context.CancellationToken.IsCancellationRequested)
        {
            // The worker is stopping and SHUTDOWN_TIMEOUT has passed: the message goes back to the broker, and another
            // worker runs the task as a new attempt (its started event tells clients to drop this attempt's text).
            logger.LogInformation("Task {TaskId} attempt {Attempt} stopped with this worker; its message goes back to the broker", request.TaskId, attempt);
            call.Ended("cancelled");
            await GiveBackUnused();
            // With the consume's own token (and no inner exception: MassTransit looks at the base one) it is a
            // cancellation to MassTransit, not a fault logged with a stack trace.
            throw new WorkerStoppingException($"the worker stopped during the generation ({e.GetType().Name})", context.CancellationToken);
        }
        catch (Exception) when (limit.IsCancellationRequested)
        {
            // The SDK may surface the cancellation as an I/O error mid-stream: it is still the time limit.
            call.Ended("timeout");
            var reason = $"the generation exceeded the time limit of {timeLimit.TotalSeconds:0} s (LLM_TIMEOUT)";
            await Fail(request, attempt, reason, new FailureDetail(504, "server_error", "timeout", null, reason, Retryable: true));
            return null;
        }
        catch (Exception e) when (!e.IsRedisFailure())
        {
            call.Ended("error");
            await rateLimiter.SettleAsync(request.Model, reserved, reserved - rateLimitOptions.Value.ExpectedCompletionTokens, CancellationToken.None);
            await ProviderFailedAsync(context, attempt, e, activity, answered: answer.Tokens > 0);
            return null;
        }
    }

    /// <summary>
    /// The provider failed: a 429 pauses the model for the whole cluster; a transient failure with retries left throws
    /// for the retry policy (after the provider's Retry-After); anything else ends the task with a reason a person can
    /// read and the status an OpenAI client should see.
    /// </summary>
    /// <param name="answered">Part of the answer went out: a request that must not be retried then (<see cref="ChatRequested.RetryAfterOutput"/>) fails.</param>
    async Task ProviderFailedAsync(ConsumeContext<ChatRequested> context, int attempt, Exception e, Activity? activity, bool answered)
    {
        var request = context.Message;
        var failure = ProviderFailure.From(e);
        if (failure.IsRateLimit)
        {
            // The provider's own limit is cluster-wide: every worker holds back, not just this call.
            var pause = failure.RetryAfter ?? TimeSpan.FromSeconds(1);
            await rateLimiter.PauseAsync(request.Model, pause, CancellationToken.None);
            logger.LogWarning("Provider rate limit hit for {Model}: the cluster pauses it for {Pause}", request.Model, pause);
            failure = failure with { RetryAfter = null }; // the next attempt waits for the pause in the limiter
        }
        if (failure.IsTransient && answered && request.RetryAfterOutput == false)
        {
            await Fail(request, attempt, $"{FailureDetail.MidAnswer.Message} ({failure.Reason})", FailureDetail.MidAnswer);
            return;
        }
        if (failure.IsTransient && context.GetRetryAttempt() < retryOptions.Value.RetryLimit)
        {
            logger.LogWarning("Task {TaskId} attempt {Attempt} failed transiently ({Reason}); it will be retried", request.TaskId, attempt, failure.Reason);
            metrics.Retry(LlmStreamMetrics.Chat, failure.IsRateLimit ? "rate_limit" : "transient");
            activity.Fail(failure.Reason);
            if (failure.RetryAfter is { } wait)
                await Task.Delay(wait < MaxRetryAfter ? wait : MaxRetryAfter, context.CancellationToken); // the provider said when
            throw new TransientProviderException(failure.Reason, e);
        }

        await Fail(request, attempt, failure.Reason, failure.ForClient());
        if (failure.IsTransient)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e); // retries exhausted: the message goes to the error queue with it
    }

    /// <summary>Settles the rate limit to the usage the provider reported, then ends the task completed with its done event.</summary>
    async Task CompleteAsync(ChatRequested request, int attempt, int reserved, Answer answer)
    {
        var usage = answer.TokenUsage;
        if (usage is not null)
            await rateLimiter.SettleAsync(request.Model, reserved, usage.TotalTokens, CancellationToken.None);
        var calls = answer.ToolCallsJson;
        var finished = await store.FinishAsync(new TaskOutcome
        {
            TaskId = request.TaskId,
            SessionId = request.SessionId,
            State = TaskState.Completed,
            Attempt = attempt,
            Result = answer.Text,
            FinishReason = answer.Finish,
            Usage = usage,
            ToolCalls = calls,
        }, StreamEvents.Done(request.TaskId, attempt, answer.Finish, usage, calls), CancellationToken.None);
        logger.LogInformation("Task {TaskId} {Outcome} with {Characters} characters", request.TaskId, finished ? "completed" : "was already ended", answer.Text.Length);
    }

    /// <summary>Waits (without polling) until the cluster-wide limits let this call through; the wait shows in the task's status.</summary>
    Task WaitForRateLimit(ChatRequested request, int tokens, CancellationToken cancellationToken)
    {
        var logged = false;
        return rateLimiter.AcquireWaitingAsync(request.Model, tokens, async until =>
        {
            if (until is { } end && !logged)
            {
                logger.LogInformation("Task {TaskId} waits until {Until} for the rate limit of {Model}", request.TaskId, end, request.Model);
                logged = true;
            }
            var token = until is null ? CancellationToken.None : cancellationToken;
            await store.SetRateLimitedUntilAsync(request.TaskId, until, token);
            await rateLimiter.SetWaitingAsync(request.TaskId, until, token);
        }, cancellationToken, logger);
    }

    async Task TryFail(ChatRequested request, string reason)
    {
        try
        {
            await store.FailAsync(request.TaskId, request.SessionId, reason);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            logger.LogError("Task {TaskId} could not be marked failed: {Reason}", request.TaskId, e.Message);
        }
    }

    async Task Fail(ChatRequested request, int attempt, string reason, FailureDetail failure)
    {
        logger.LogWarning("Task {TaskId} failed: {Reason}", request.TaskId, reason);
        Activity.Current.Fail(reason);
        await store.FailAsync(request.TaskId, request.SessionId, reason, attempt, failure);
    }
}
