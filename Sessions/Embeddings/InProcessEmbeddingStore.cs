using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Embeddings;

/// <summary>The single-process default (no REDIS_URL): the semantics of <see cref="RedisEmbeddingStore"/>, in memory.</summary>
public sealed class InProcessEmbeddingStore(StreamSignals signals, TimeProvider clock, TimeSpan retention, InProcessTaskCounters? counters = null) : IEmbeddingStore
{
    readonly Lock _lock = new();
    readonly Dictionary<string, Entry> _tasks = [];
    DateTimeOffset _nextSweep;

    sealed class Entry
    {
        public required EmbeddingTask Task;
        public int[]? Plan;
        public readonly Dictionary<int, EmbeddingChunk> Chunks = [];
        public DateTimeOffset ExpiresAt;
    }

    public Task<bool> CreateAsync(EmbeddingTask task, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            Sweep();
            if (_tasks.ContainsKey(task.TaskId))
                return Task.FromResult(false);
            _tasks[task.TaskId] = new Entry { Task = task with { Attempt = 0, ChunksTotal = 0, ChunksDone = 0, PromptTokens = 0 }, ExpiresAt = clock.GetUtcNow() + retention };
            return Task.FromResult(true);
        }
    }

    public Task<EmbeddingTask?> GetAsync(string taskId, CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(Find(taskId)?.Task);
    }

    public Task<EmbeddingStart?> StartAsync(string taskId, IReadOnlyList<int> proposedPlan, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Find(taskId) is not { } entry || entry.Task.State.IsTerminal())
                return Task.FromResult<EmbeddingStart?>(null);
            if (entry.Plan is null)
            {
                entry.Plan = [.. proposedPlan];
                entry.Task = entry.Task with { ChunksTotal = proposedPlan.Count, StartedAt = clock.GetUtcNow() };
            }
            entry.Task = entry.Task with { State = EmbeddingState.Running, Attempt = entry.Task.Attempt + 1 };
            return Task.FromResult<EmbeddingStart?>(new EmbeddingStart(entry.Plan, entry.Chunks.Keys.ToHashSet(), entry.Task.Attempt));
        }
    }

    public Task<bool> SaveChunkAsync(string taskId, int index, EmbeddingChunk chunk, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (Find(taskId) is not { } entry || entry.Task.State != EmbeddingState.Running)
                return Task.FromResult(false);
            if (entry.Chunks.TryAdd(index, chunk))
                entry.Task = entry.Task with
                {
                    ChunksDone = entry.Task.ChunksDone + 1,
                    PromptTokens = entry.Task.PromptTokens + chunk.PromptTokens,
                    Dimensions = chunk.Dimensions,
                };
            return Task.FromResult(true);
        }
    }

    public Task<bool> FinishAsync(string taskId, EmbeddingState state, string? error, CancellationToken cancellationToken, FailureDetail? failure = null) =>
        Finish(taskId, state, error, onlyIfQueued: false, failure);

    public Task<bool> WithdrawAsync(string taskId, string error, CancellationToken cancellationToken) =>
        Finish(taskId, EmbeddingState.Failed, error, onlyIfQueued: true);

    Task<bool> Finish(string taskId, EmbeddingState state, string? error, bool onlyIfQueued, FailureDetail? failure = null)
    {
        lock (_lock)
        {
            if (Find(taskId) is not { } entry || entry.Task.State.IsTerminal() || (onlyIfQueued && entry.Task.State != EmbeddingState.Queued))
                return Task.FromResult(false);
            if (state == EmbeddingState.Completed && (entry.Task.State != EmbeddingState.Running || entry.Task.ChunksDone != entry.Task.ChunksTotal))
                throw new InvalidOperationException($"embedding task {taskId} cannot complete before all its chunks are stored");
            entry.Task = entry.Task with { State = state, Error = error, Failure = failure, FinishedAt = clock.GetUtcNow() };
            entry.ExpiresAt = clock.GetUtcNow() + retention;
            // Counted before the lock lets anyone read the terminal state: whoever sees the task ended sees it counted.
            counters?.Record(LlmStreamMetrics.Embeddings, state.ToWire());
        }
        signals.Notify(EmbeddingWake.Key(taskId));
        return Task.FromResult(true);
    }

    public Task<EmbeddingChunk?> ReadChunkAsync(string taskId, int index, CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(Find(taskId)?.Chunks.GetValueOrDefault(index));
    }

    Entry? Find(string taskId) =>
        _tasks.TryGetValue(taskId, out var entry) && entry.ExpiresAt > clock.GetUtcNow() ? entry : null;

    void Sweep()
    {
        var now = clock.GetUtcNow();
        if (now < _nextSweep)
            return;
        _nextSweep = now + TimeSpan.FromSeconds(30);
        foreach (var (id, entry) in _tasks.ToList())
            if (entry.ExpiresAt <= now)
                _tasks.Remove(id);
    }
}
