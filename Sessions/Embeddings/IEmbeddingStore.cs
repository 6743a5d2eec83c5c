using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Embeddings;

/// <summary>
/// Embedding batches and their vectors, kept for RESULT_TTL. Vectors are stored per chunk as the worker finishes
/// it, so a redelivered batch skips the chunks already done and a reader assembles the result chunk by chunk.
/// </summary>
public interface IEmbeddingStore
{
    /// <summary>False when a task with this id already exists.</summary>
    Task<bool> CreateAsync(EmbeddingTask task, CancellationToken cancellationToken);

    Task<EmbeddingTask?> GetAsync(string taskId, CancellationToken cancellationToken);

    /// <summary>
    /// Marks the task running and fixes its plan: <paramref name="proposedPlan"/> (first text of each chunk) unless an
    /// earlier delivery already fixed one. Null when the task has ended or expired.
    /// </summary>
    Task<EmbeddingStart?> StartAsync(string taskId, IReadOnlyList<int> proposedPlan, CancellationToken cancellationToken);

    /// <summary>Stores one chunk's vectors (once); false when the task has ended or expired meanwhile.</summary>
    Task<bool> SaveChunkAsync(string taskId, int index, EmbeddingChunk chunk, CancellationToken cancellationToken);

    /// <summary>
    /// Ends the task: completed only once every chunk is stored, failed with <paramref name="error"/> unless it already
    /// ended. Wakes readers waiting on <see cref="EmbeddingWake.Key"/>. False when it had already ended (or expired).
    /// </summary>
    /// <param name="failure">How a failure reads to an OpenAI client (the provider's own 4xx, or a retryable status).</param>
    Task<bool> FinishAsync(string taskId, EmbeddingState state, string? error, CancellationToken cancellationToken, FailureDetail? failure = null);

    /// <summary>
    /// Fails a task that no worker has started (still queued), for a send the broker did not confirm. False when a
    /// worker has started it, the message having reached the queue after all, or it ended.
    /// </summary>
    Task<bool> WithdrawAsync(string taskId, string error, CancellationToken cancellationToken);

    Task<EmbeddingChunk?> ReadChunkAsync(string taskId, int index, CancellationToken cancellationToken);
}

/// <summary>The plan in effect (first text of each chunk) and the chunks an earlier delivery already stored.</summary>
public sealed record EmbeddingStart(IReadOnlyList<int> Plan, IReadOnlySet<int> DoneChunks, int Attempt);

public static class EmbeddingWake
{
    /// <summary>The key readers watch for an embedding task's end; its wake channel is in the batch's shard (<see cref="WakeChannel.Name"/> with the task id).</summary>
    public static string Key(string taskId) => "embedding:" + taskId;
}
