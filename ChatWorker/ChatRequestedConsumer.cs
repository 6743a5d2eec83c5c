using System.ClientModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
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
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

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

    async Task Generate(ConsumeContext<ChatRequested> context)
    {
        var request = context.Message;
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId, ["SessionId"] = request.SessionId });

        // Looked up before anything is reserved: a message for a task that ended (cancelled while queued, or
        // redelivered after it finished) takes nothing from the rate limit, and a live task never waits for a dead
        // one's reservation.
        if (await store.GetAsync(request.TaskId, context.CancellationToken) is not { } task || task.State.IsTerminal())
        {
            logger.LogInformation("Task {TaskId} has already ended or expired; message acknowledged without a new generation", request.TaskId);
            return;
        }

        // Registered before the rate-limit wait, so DELETE also frees a task that waits for the limit.
        using var cancelled = cancellation.Register(request.TaskId);
        var messages = Messages(request);
        // Counted by the gateway, in time linear in the prompt (a worker must not spend minutes on one hostile message).
        var reserved = (request.PromptTokens ?? promptTokens.CountPrompt(request)) + rateLimitOptions.Value.ExpectedCompletionTokens;
        using (var waitToken = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, cancelled.Token))
        {
            try
            {
                await WaitForRateLimit(request, reserved, waitToken.Token);
            }
            catch (OperationCanceledException) when (cancelled.Token.IsCancellationRequested)
            {
                logger.LogInformation("Task {TaskId} was cancelled while it waited for the rate limit", request.TaskId);
                return;
            }
        }

        var attempt = await store.StartAttemptAsync(request.TaskId, request.SessionId, worker.Id, context.CancellationToken);
        if (attempt is null)
        {
            await rateLimiter.TryReleaseAsync(request.Model, reserved, logger); // nothing was sent
            logger.LogInformation("Task {TaskId} has already ended or expired; message acknowledged without a new generation", request.TaskId);
            return;
        }

        logger.LogInformation("Generating task {TaskId} with {Model}, attempt {Attempt}", request.TaskId, request.Model, attempt);
        // A child of the consume span: the provider's HTTP call inside it carries this trace in its traceparent header.
        using var activity = LlmStreamTelemetry.Source.StartActivity("chat.generate");
        activity.TagTask(request.TaskId, request.SessionId);
        activity?.SetTag(LlmStreamTelemetry.ModelTag, request.Model);
        activity?.SetTag(LlmStreamTelemetry.AttemptTag, attempt.Value);
        var callStarted = Stopwatch.GetTimestamp();
        var generated = 0;
        var timeLimit = modelOptions.Value.LlmTimeout;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, cancelled.Token);
        limit.CancelAfter(timeLimit);

        // A call that stops early used its prompt and what it generated so far: the rest of the reservation goes back.
        Task GiveBackUnused() => rateLimiter.TrySettleAsync(request.Model, reserved, reserved - rateLimitOptions.Value.ExpectedCompletionTokens + generated, logger);

        var text = new StringBuilder();
        var toolCalls = new List<ToolCall>();
        UsageDetails? usage = null;
        ChatFinishReason? finishReason = null;
        try
        {
            var client = models.For(request.Model);
            var tokens = tokenBatcher.Start(request.TaskId, request.SessionId, attempt.Value);
            await foreach (var update in client.GetStreamingResponseAsync(messages, Options(request), limit.Token))
            {
                var token = update.Text;
                if (token.Length > 0)
                {
                    if (generated++ == 0)
                        metrics.TimeToFirstToken(request.Model, LlmStreamMetrics.Since(callStarted));
                    if (!tokens.Add(StreamEvents.Token(request.TaskId, attempt.Value, token)))
                    {
                        // Cancelled, or another attempt took over: leaving the loop cancels the provider call.
                        logger.LogInformation("Task {TaskId} attempt {Attempt} is no longer current; generation stopped", request.TaskId, attempt);
                        metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "cancelled");
                        await GiveBackUnused();
                        return;
                    }
                    text.Append(token);
                }
                usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
                finishReason = update.FinishReason ?? finishReason;
                foreach (var call in update.Contents.OfType<FunctionCallContent>())
                    toolCalls.Add(new ToolCall(call.CallId, call.Name, JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>())));
            }
            metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "ok");
            metrics.TokensGenerated(request.Model, usage?.OutputTokenCount ?? generated);
            if (!await tokens.FlushAsync())
            {
                logger.LogInformation("Task {TaskId} attempt {Attempt} is no longer current; its outcome is dropped", request.TaskId, attempt);
                return;
            }
        }
        catch (Exception) when (cancelled.Token.IsCancellationRequested)
        {
            // DELETE /chat/{id}: the gateway already ended the task with a cancelled event.
            logger.LogInformation("Task {TaskId} was cancelled; the provider call stopped", request.TaskId);
            metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "cancelled");
            await GiveBackUnused();
            return;
        }
        catch (Exception e) when (context.CancellationToken.IsCancellationRequested)
        {
            // The worker is stopping and SHUTDOWN_TIMEOUT has passed: the message goes back to the broker, and another
            // worker runs the task as a new attempt (its started event tells clients to drop this attempt's text).
            logger.LogInformation("Task {TaskId} attempt {Attempt} stopped with this worker; its message goes back to the broker", request.TaskId, attempt);
            metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "cancelled");
            await GiveBackUnused();
            // With the consume's own token (and no inner exception: MassTransit looks at the base one) it is a
            // cancellation to MassTransit, not a fault logged with a stack trace.
            throw new WorkerStoppingException($"the worker stopped during the generation ({e.GetType().Name})", context.CancellationToken);
        }
        catch (Exception) when (limit.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // The SDK may surface the cancellation as an I/O error mid-stream: it is still the time limit.
            metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "timeout");
            var reason = $"the generation exceeded the time limit of {timeLimit.TotalSeconds:0} s (LLM_TIMEOUT)";
            await Fail(request, attempt.Value, reason, new FailureDetail(504, "server_error", "timeout", null, reason, Retryable: true));
            return;
        }
        catch (Exception e) when (!e.IsRedisFailure() && !context.CancellationToken.IsCancellationRequested)
        {
            var failure = ProviderFailure.From(e);
            metrics.ProviderCall(LlmStreamMetrics.Chat, request.Model, LlmStreamMetrics.Since(callStarted), "error");
            await rateLimiter.SettleAsync(request.Model, reserved, reserved - rateLimitOptions.Value.ExpectedCompletionTokens, CancellationToken.None);
            if (failure.IsRateLimit)
            {
                // The provider's own limit is cluster-wide: every worker holds back, not just this call.
                var pause = failure.RetryAfter ?? TimeSpan.FromSeconds(1);
                await rateLimiter.PauseAsync(request.Model, pause, CancellationToken.None);
                logger.LogWarning("Provider rate limit hit for {Model}: the cluster pauses it for {Pause}", request.Model, pause);
                failure = failure with { RetryAfter = null }; // the next attempt waits for the pause in the limiter
            }
            var retriesLeft = failure.IsTransient && context.GetRetryAttempt() < retryOptions.Value.RetryLimit;
            if (retriesLeft)
            {
                logger.LogWarning("Task {TaskId} attempt {Attempt} failed transiently ({Reason}); it will be retried", request.TaskId, attempt, failure.Reason);
                metrics.Retry(LlmStreamMetrics.Chat, failure.IsRateLimit ? "rate_limit" : "transient");
                activity.Fail(failure.Reason);
                if (failure.RetryAfter is { } wait)
                    await Task.Delay(wait < MaxRetryAfter ? wait : MaxRetryAfter, context.CancellationToken); // the provider said when
                throw new TransientProviderException(failure.Reason, e);
            }

            await Fail(request, attempt.Value, failure.Reason, failure.ForClient());
            if (failure.IsTransient)
                throw; // retries exhausted: the message goes to the error queue with the exception
            return;
        }

        var tokenUsage = usage is null ? null : new TokenUsage(
            (int)(usage.InputTokenCount ?? 0), (int)(usage.OutputTokenCount ?? 0),
            (int)(usage.TotalTokenCount ?? (usage.InputTokenCount ?? 0) + (usage.OutputTokenCount ?? 0)));
        var finish = finishReason?.Value ?? (toolCalls.Count > 0 ? "tool_calls" : "stop");
        var calls = toolCalls.Count == 0 ? null : JsonSerializer.Serialize(toolCalls.Select(c => new { id = c.Id, name = c.Name, arguments = c.Arguments }));
        if (tokenUsage is not null)
            await rateLimiter.SettleAsync(request.Model, reserved, tokenUsage.TotalTokens, CancellationToken.None);
        var finished = await store.FinishAsync(new TaskOutcome
        {
            TaskId = request.TaskId,
            SessionId = request.SessionId,
            State = TaskState.Completed,
            Attempt = attempt,
            Result = text.ToString(),
            FinishReason = finish,
            Usage = tokenUsage,
            ToolCalls = calls,
        }, StreamEvents.Done(request.TaskId, attempt.Value, finish, tokenUsage, calls), CancellationToken.None);

        logger.LogInformation("Task {TaskId} {Outcome} with {Characters} characters", request.TaskId, finished ? "completed" : "was already ended", text.Length);
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

    static ChatOptions? Options(ChatRequested request)
    {
        if (request is { Temperature: null, TopP: null, MaxTokens: null, Stop: null, Tools: null, FrequencyPenalty: null, PresencePenalty: null,
                Seed: null, ParallelToolCalls: null, ResponseFormat: null, ReasoningEffort: null, Store: null, Metadata: null, EndUserId: null })
            return null;
        var jsonSchema = JsonSchemaFormat(request.ResponseFormat);
        var needsOpenAiOptions = jsonSchema is not null || request.ReasoningEffort is not null || request.Store is not null
            || request.Metadata is not null || request.EndUserId is not null;
        return new ChatOptions
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            Seed = request.Seed,
            AllowMultipleToolCalls = request.ParallelToolCalls,
            ResponseFormat = request.ResponseFormat is not null && jsonSchema is null ? ChatResponseFormat.Json : null,
            RawRepresentationFactory = needsOpenAiOptions ? _ => OpenAiOptions(request, jsonSchema) : null,
            MaxOutputTokens = request.MaxTokens,
            StopSequences = request.Stop is null ? null : [.. request.Stop],
            // Declarations only: the caller runs its functions, as with OpenAI itself.
            Tools = request.Tools is null ? null : [.. request.Tools.Select(t =>
                AIFunctionFactory.CreateDeclaration(t.Name, t.Description, JsonDocument.Parse(t.Parameters).RootElement.Clone()))],
            ToolMode = request.ToolChoice switch
            {
                null => null,
                "auto" => ChatToolMode.Auto,
                "none" => ChatToolMode.None,
                "required" => ChatToolMode.RequireAny,
                var name => ChatToolMode.RequireSpecific(name),
            },
        };
    }

    /// <summary>A json_schema response_format (checked by the gateway) as the OpenAI SDK's format, with its strict flag; null for any other.</summary>
    static OpenAI.Chat.ChatResponseFormat? JsonSchemaFormat(string? responseFormat)
    {
        if (responseFormat is null)
            return null;
        using var document = JsonDocument.Parse(responseFormat);
        if (document.RootElement.GetProperty("type").GetString() != "json_schema")
            return null;
        var schema = document.RootElement.GetProperty("json_schema");
        return OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat(
            schema.GetProperty("name").GetString()!,
            BinaryData.FromString(schema.TryGetProperty("schema", out var body) && body.ValueKind == JsonValueKind.Object ? body.GetRawText() : "{}"),
            schema.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null,
            schema.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null);
    }

    /// <summary>
    /// What Microsoft.Extensions.AI's options have no place for, set on the OpenAI SDK's own options, which it starts
    /// from: a json_schema's strict flag (what makes the provider hold to the schema), reasoning_effort, store, metadata
    /// and the end user's id.
    /// </summary>
    static OpenAI.Chat.ChatCompletionOptions OpenAiOptions(ChatRequested request, OpenAI.Chat.ChatResponseFormat? jsonSchema)
    {
        var options = new OpenAI.Chat.ChatCompletionOptions { ResponseFormat = jsonSchema };
#pragma warning disable OPENAI001 // the SDK marks reasoning effort as experimental
        if (request.ReasoningEffort is { } effort)
            options.ReasoningEffortLevel = new OpenAI.Chat.ChatReasoningEffortLevel(effort);
#pragma warning restore OPENAI001
        options.StoredOutputEnabled = request.Store;
        options.EndUserId = request.EndUserId;
        foreach (var (key, value) in request.Metadata ?? new Dictionary<string, string>())
            options.Metadata[key] = value;
        return options;
    }

    static ChatMessage Message(ChatTurn turn)
    {
        if (turn.Role == "tool")
            return new ChatMessage(ChatRole.Tool, [new FunctionResultContent(turn.ToolCallId ?? "", turn.Content)]);
        if (turn.ToolCalls is not { Count: > 0 } calls)
            return new ChatMessage(new ChatRole(turn.Role), turn.Content);
        var contents = new List<AIContent>();
        if (turn.Content.Length > 0)
            contents.Add(new TextContent(turn.Content));
        foreach (var call in calls)
            contents.Add(new FunctionCallContent(call.Id, call.Name,
                JsonSerializer.Deserialize<Dictionary<string, object?>>(string.IsNullOrWhiteSpace(call.Arguments) ? "{}" : call.Arguments)));
        return new ChatMessage(ChatRole.Assistant, contents);
    }

    static List<ChatMessage> Messages(ChatRequested request)
    {
        if (request.Conversation is { Count: > 0 } conversation)
            return [.. conversation.Select(Message)];
        var messages = new List<ChatMessage>(2);
        if (!string.IsNullOrWhiteSpace(request.SystemPrompt))
            messages.Add(new ChatMessage(ChatRole.System, request.SystemPrompt));
        messages.Add(new ChatMessage(ChatRole.User, request.Message));
        return messages;
    }
}
