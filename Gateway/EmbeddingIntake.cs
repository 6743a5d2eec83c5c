using System.Diagnostics;
using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Embeddings;
using LlmStream.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace LlmStream.Gateway;

/// <summary>
/// Accepts an embedding batch for /embeddings and /v1/embeddings: the task record first, then the message on the
/// embeddings queue its priority selects. If the broker refuses it, the task is marked failed (never left queued),
/// unless a worker has already started it.
/// </summary>
public sealed class EmbeddingIntake(IEmbeddingStore store, IWorkDispatcher dispatcher, LlmStreamMetrics metrics, ILogger<EmbeddingIntake> logger)
{
    public async Task<IntakeOutcome> SubmitAsync(EmbedBatchRequested request)
    {
        using var logScope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId });
        Activity.Current.TagTask(request.TaskId);
        try
        {
            var created = await store.CreateAsync(new EmbeddingTask
            {
                TaskId = request.TaskId,
                Model = request.Model,
                Texts = request.Texts.Count,
                State = EmbeddingState.Queued,
                Priority = request.Priority,
                RequestedDimensions = request.Dimensions,
                ApiKeyName = request.ApiKeyName,
                CreatedAt = request.AcceptedAt,
            }, CancellationToken.None);
            if (!created)
                throw new InvalidOperationException($"embedding task id {request.TaskId} is already taken");
        }
        catch (RedisException e)
        {
            logger.LogError(e, "Task store unavailable; embedding batch not accepted");
            return IntakeOutcome.StoreUnavailable;
        }

        try
        {
            await dispatcher.DispatchAsync(request, WorkQueues.Embeddings, request.Priority, CancellationToken.None);
        }
        catch (BrokerUnavailableException e)
        {
            // As for chats: a send that timed out may have reached the queue, and a worker that started the batch has it.
            try
            {
                if (await store.WithdrawAsync(request.TaskId, ChatIntake.BrokerDown, CancellationToken.None))
                {
                    logger.LogError(e, "Broker unavailable; embedding task {TaskId} not queued", request.TaskId);
                    return IntakeOutcome.BrokerUnavailable;
                }
                if (await store.GetAsync(request.TaskId, CancellationToken.None) is not { } found)
                {
                    logger.LogError(e, "Broker unavailable and embedding task {TaskId} gone from the store; a worker will find nothing to run", request.TaskId);
                    return IntakeOutcome.BrokerUnavailable;
                }
                logger.LogWarning(e, "The broker did not confirm embedding task {TaskId}, but the task is {State} already: a worker got it; accepted",
                    request.TaskId, found.State.ToWire());
            }
            catch (RedisException redis)
            {
                logger.LogError(redis, "Broker and task store unavailable; embedding task {TaskId} may still be queued and run", request.TaskId);
                return IntakeOutcome.BrokerUnavailable;
            }
        }

        var queue = WorkQueues.Embeddings.QueueFor(request.Priority);
        metrics.EmbeddingBatchAccepted(queue);
        logger.LogInformation("Queued embedding task {TaskId}: {Texts} texts on {Queue}", request.TaskId, request.Texts.Count, queue);
        return IntakeOutcome.Accepted;
    }
}
