using System.Diagnostics;
using LlmStream.Contracts;
using LlmStream.Providers;
using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Embeddings;
using LlmStream.Sessions.Streams;
using MassTransit;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace LlmStream.EmbeddingWorker;

/// <summary>
/// Embeds one batch: cuts it into provider-sized chunks (texts and tokens), runs up to EMBEDDING_CHUNK_PARALLELISM
/// of them at once under the cluster-wide rate limit, retries a failed chunk on its own, and stores each chunk's
/// vectors as soon as it is done, so progress shows in the status and a redelivered batch (a worker died) only
/// runs the chunks that are missing.
/// </summary>
public sealed class EmbedBatchRequestedConsumer(
    IEmbeddingStore store,
    ModelClients models,
    IRateLimiter rateLimiter,
    PromptTokens promptTokens,
    IOptions<EmbeddingOptions> embeddingOptions,
    IOptions<RetryOptions> retryOptions,
    LlmStreamMetrics metrics,
    TaskCancellation cancellation,
    ILogger<EmbedBatchRequestedConsumer> logger) : IConsumer<EmbedBatchRequested>
{
    static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(60);

    public async Task Consume(ConsumeContext<EmbedBatchRequested> context)
    {
        try
        {
            await Embed(context.Message, context.CancellationToken);
        }
        catch (Exception e) when (context.CancellationToken.IsCancellationRequested && !(e is OperationCanceledException c && c.CancellationToken == context.CancellationToken))
        {
            // The worker stopped (SHUTDOWN_TIMEOUT passed): the message goes back, and the chunks stored so far stay done.
            // With the consume's own token, and no inner exception, MassTransit takes it as a cancellation, not a fault.
            logger.LogInformation("Embedding task {TaskId} stopped with this worker; its message goes back to the broker", context.Message.TaskId);
            throw new WorkerStoppingException($"the worker stopped ({e.GetType().Name})", context.CancellationToken);
        }
        catch (Exception e) when (!context.CancellationToken.IsCancellationRequested
                                  && !(e.IsRedisFailure() && context.GetRetryAttempt() < retryOptions.Value.RetryLimit))
        {
            // Whatever ends this message for good also ends its task, so a client waiting on it gets an answer.
            await TryFail(context.Message.TaskId, $"the worker could not run the batch ({e.GetType().Name}: {ProviderFailure.FirstLine(e.Message)})");
            throw;
        }
    }

    async Task Embed(EmbedBatchRequested request, CancellationToken cancellationToken)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId });
        if (await store.GetAsync(request.TaskId, cancellationToken) is not { } task || task.State.IsTerminal())
        {
            logger.LogInformation("Embedding task {TaskId} has already ended or expired; message acknowledged", request.TaskId);
            return;
        }

        var options = embeddingOptions.Value;
        var tokens = request.TextTokens is { } counted && counted.Count == request.Texts.Count
            ? [.. counted]
            : request.Texts.Select(t => promptTokens.CountText(request.Model, t)).ToArray();
        var start = await store.StartAsync(request.TaskId, EmbeddingPlan.Cut(tokens, options.ChunkTexts, options.ChunkTokens), cancellationToken);
        if (start is null)
        {
            logger.LogInformation("Embedding task {TaskId} has already ended or expired; message acknowledged", request.TaskId);
            return;
        }
        var missing = Enumerable.Range(0, start.Plan.Count).Where(i => !start.DoneChunks.Contains(i)).ToList();
        // DELETE /embeddings/{id} ends the task in the store, then signals: the chunks in flight stop at once.
        using var cancelled = cancellation.Register(request.TaskId);
        using var running = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, cancelled.Token);
        logger.LogInformation("Embedding task {TaskId}: {Texts} texts in {Chunks} chunks ({Done} already done), attempt {Attempt}",
            request.TaskId, request.Texts.Count, start.Plan.Count, start.DoneChunks.Count, start.Attempt);

        try
        {
            await Parallel.ForEachAsync(missing, new ParallelOptions { MaxDegreeOfParallelism = options.ChunkParallelism, CancellationToken = running.Token },
                async (index, ct) =>
                {
                    var (first, count) = EmbeddingPlan.Range(start.Plan, index, request.Texts.Count);
                    var chunk = await EmbedChunk(request, index, first, count, tokens.AsSpan(first, count).ToArray().Sum(), ct);
                    if (!await store.SaveChunkAsync(request.TaskId, index, chunk, CancellationToken.None))
                        throw new BatchEndedException();
                });
        }
        catch (OperationCanceledException) when (cancelled.Token.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            logger.LogInformation("Embedding task {TaskId} was cancelled; its provider requests stopped", request.TaskId);
            return;
        }
        catch (BatchEndedException)
        {
            logger.LogInformation("Embedding task {TaskId} ended elsewhere; this delivery stops", request.TaskId);
            return;
        }
        catch (ChunkFailedException e)
        {
            logger.LogWarning("Embedding task {TaskId} failed: {Reason}", request.TaskId, e.Message);
            Activity.Current.Fail(e.Message);
            await store.FinishAsync(request.TaskId, EmbeddingState.Failed, e.Message, CancellationToken.None, e.Failure);
            return;
        }

        await store.FinishAsync(request.TaskId, EmbeddingState.Completed, null, CancellationToken.None);
        logger.LogInformation("Embedding task {TaskId} completed: {Texts} texts", request.TaskId, request.Texts.Count);
    }

    /// <summary>One provider request, retried on its own (RETRY_LIMIT, exponential from RETRY_BASE_MS, at least the provider's Retry-After).</summary>
    async Task<EmbeddingChunk> EmbedChunk(EmbedBatchRequested request, int index, int first, int count, int reserved, CancellationToken cancellationToken)
    {
        var generator = models.EmbeddingsFor(request.Model);
        var settings = retryOptions.Value;
        var texts = request.Texts.Skip(first).Take(count).ToList();
        var generationOptions = request.Dimensions is { } d ? new EmbeddingGenerationOptions { Dimensions = d } : null;
        // One span per chunk, retries included: parallel chunks show side by side under the batch's consume span.
        using var activity = LlmStreamTelemetry.Source.StartActivity("embeddings.chunk");
        activity.TagTask(request.TaskId);
        activity?.SetTag(LlmStreamTelemetry.ModelTag, request.Model);
        activity?.SetTag("llmstream.chunk", index);
        activity?.SetTag("llmstream.texts", count);
        for (var attempt = 1; ; attempt++)
        {
            await rateLimiter.AcquireWaitingAsync(request.Model, reserved, report: null, cancellationToken, logger);
            var callStarted = Stopwatch.GetTimestamp();
            try
            {
                var embeddings = await generator.GenerateAsync(texts, generationOptions, cancellationToken);
                metrics.ProviderCall(LlmStreamMetrics.Embeddings, request.Model, LlmStreamMetrics.Since(callStarted), "ok");
                var used = (int)(embeddings.Usage?.InputTokenCount ?? reserved);
                await rateLimiter.SettleAsync(request.Model, reserved, used, CancellationToken.None);
                return ToChunk(embeddings, index, first, count, used);
            }
            catch (Exception e) when (e is not ChunkFailedException && !e.IsRedisFailure() && !cancellationToken.IsCancellationRequested)
            {
                var failure = ProviderFailure.From(e);
                metrics.ProviderCall(LlmStreamMetrics.Embeddings, request.Model, LlmStreamMetrics.Since(callStarted), "error");
                await rateLimiter.SettleAsync(request.Model, reserved, 0, CancellationToken.None);
                if (failure.IsRateLimit)
                {
                    await rateLimiter.PauseAsync(request.Model, failure.RetryAfter ?? TimeSpan.FromSeconds(1), CancellationToken.None);
                    failure = failure with { RetryAfter = null }; // the limiter holds every worker back until then
                }
                var what = $"chunk {index} (texts {first}–{first + count - 1})";
                if (!failure.IsTransient || attempt > settings.RetryLimit)
                {
                    activity.Fail(failure.Reason);
                    throw new ChunkFailedException($"{what} failed{(failure.IsTransient ? $" after {attempt} attempts" : "")}: {failure.Reason}", failure.ForClient());
                }

                metrics.Retry(LlmStreamMetrics.Embeddings, failure.IsRateLimit ? "rate_limit" : "transient");
                var backoff = TimeSpan.FromMilliseconds(settings.RetryBaseMilliseconds * Math.Pow(2, attempt - 1));
                var wait = failure.RetryAfter is { } after && after > backoff ? after : backoff;
                wait = wait < MaxBackoff ? wait : MaxBackoff;
                logger.LogWarning("Embedding task {TaskId} {Chunk} failed ({Reason}); retry {Retry} of {Limit} in {Wait}",
                    request.TaskId, what, failure.Reason, attempt, settings.RetryLimit, wait);
                await Task.Delay(wait, cancellationToken);
            }
        }
    }

    static EmbeddingChunk ToChunk(GeneratedEmbeddings<Embedding<float>> embeddings, int index, int first, int count, int tokens)
    {
        if (embeddings.Count != count)
            throw new ChunkFailedException($"chunk {index}: the provider returned {embeddings.Count} vectors for {count} texts");
        var dimensions = embeddings[0].Vector.Length;
        var values = new float[count * dimensions];
        for (var row = 0; row < count; row++)
        {
            var vector = embeddings[row].Vector.Span;
            if (vector.Length != dimensions)
                throw new ChunkFailedException($"chunk {index}: the provider returned vectors of different lengths ({dimensions} and {vector.Length})");
            vector.CopyTo(values.AsSpan(row * dimensions));
        }
        return new EmbeddingChunk(first, count, dimensions, values, tokens);
    }

    async Task TryFail(string taskId, string reason)
    {
        try
        {
            await store.FinishAsync(taskId, EmbeddingState.Failed, reason, CancellationToken.None);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            logger.LogError("Embedding task {TaskId} could not be marked failed: {Reason}", taskId, e.Message);
        }
    }

    sealed class BatchEndedException : Exception;
}

/// <summary>A chunk failed for good (not transient, or out of retries): its batch fails with this reason.</summary>
/// <param name="failure">How the failure reads to an OpenAI client; a server error when the provider did not say.</param>
public sealed class ChunkFailedException(string message, FailureDetail? failure = null) : Exception(message)
{
    public FailureDetail Failure { get; } = failure ?? FailureDetail.Internal with { Message = message };
}
