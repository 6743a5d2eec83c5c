using System.Diagnostics;
using LlmStream.Contracts;
using LlmStream.Gateway.Intake;
using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Embeddings;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.Embeddings;

/// <summary>
/// Accepts an embedding batch for /embeddings and /v1/embeddings: the task record first, then the message on the
/// embeddings queue its priority selects. If the broker refuses it, the task is marked failed (never left queued),
/// unless a worker has already started it.
/// </summary>
public sealed class EmbeddingIntake(IEmbeddingStore store, IWorkDispatcher dispatcher, Outages outages, LlmStreamMetrics metrics, ILogger<EmbeddingIntake> logger)
{
    /// <returns>What became of the batch, with the queue it went to (an embedding task has no session).</returns>
    public async Task<IntakeResult> SubmitAsync(EmbedBatchRequested request)
    {
        using var logScope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = request.TaskId });
        Activity.Current.TagTask(request.TaskId);
        var address = WorkQueues.Embeddings.For(request.Priority); // the queue, named once for this request
        return new IntakeResult(await CreateAndDispatch(request, address), request.TaskId, "", address.Queue);
    }

    async Task<IntakeOutcome> CreateAndDispatch(EmbedBatchRequested request, WorkAddress address)
    {
        if (outages.StoreRefuses(request.TaskId))
            return IntakeOutcome.StoreUnavailable;
        if (outages.Broker.Refuses())
            return IntakeOutcome.BrokerDown;
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
            outages.StoreOf(request.TaskId).Succeeded();
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            outages.StoreOf(request.TaskId).Failed(e);
            return IntakeOutcome.StoreUnavailable;
        }

        try
        {
            await outages.DispatchAsync(dispatcher, request, address);
        }
        catch (BrokerUnavailableException e)
        {
            if (await UnconfirmedSend.RefusedAsync(e, request.TaskId, logger,
                    () => store.WithdrawAsync(request.TaskId, ChatIntake.BrokerDown, CancellationToken.None),
                    async () => (await store.GetAsync(request.TaskId, CancellationToken.None))?.State.ToWire()))
                return IntakeOutcome.BrokerUnavailable;
        }

        var queue = address.Queue;
        metrics.EmbeddingBatchAccepted(queue);
        logger.LogInformation("Queued embedding task {TaskId}: {Texts} texts on {Queue}", request.TaskId, request.Texts.Count, queue);
        return IntakeOutcome.Accepted;
    }
}
