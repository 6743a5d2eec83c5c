using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Tasks;

/// <summary>
/// The single-process default (no REDIS_URL): the same semantics as <see cref="RedisTaskStore"/>, held
/// in memory with stream-style ids. Finished sessions are dropped after the retention period, or sooner, oldest first,
/// when more than <paramref name="maxFinished"/> are held.
/// </summary>
public sealed class InProcessTaskStore(
    StreamSignals signals, TimeProvider clock, TimeSpan retention, InProcessTaskCounters? counters = null, int maxFinished = int.MaxValue) : ITaskStore
{
    readonly Lock _lock = new();
    readonly Dictionary<string, (TaskRecord Task, DateTimeOffset ExpiresAt)> _tasks = [];
    readonly Dictionary<string, Session> _sessions = [];
    long _lastMs;
    long _sequence;
    DateTimeOffset _nextSweep;
    // Sessions in the order they finished, with the id of the end they had then (a session that went on has a later one).
    readonly Queue<(string SessionId, string EndId)> _finished = new();
    int _finishedHeld;

    /// <summary>Finished sessions held now, and the most that are (MAX_FINISHED_STREAMS), for /stats.</summary>
    public (int Held, int Limit) FinishedStreams
    {
        get { lock (_lock) return (_finishedHeld, maxFinished); }
    }

    sealed class Session
    {
        public readonly List<StreamEntry> Entries = [];
        public readonly List<string> TaskIds = [];
        public DateTimeOffset ExpiresAt;
    }

    public Task<CreateResult> CreateAsync(TaskRecord task, string queuedEventData, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            Sweep();
            if (_tasks.ContainsKey(task.TaskId))
                return Task.FromResult(CreateResult.DuplicateTask);
            if (_sessions.TryGetValue(task.SessionId, out var session) && session.Entries.Count > 0 && !session.Entries[^1].IsTerminal)
                return Task.FromResult(CreateResult.SessionBusy);
            if (session is { Entries.Count: > 0 })
                _finishedHeld--; // it goes on: no longer a finished session
            _tasks[task.TaskId] = (task with { StreamStart = Append(task.SessionId, StreamEventTypes.Queued, queuedEventData) }, Expiry());
            var taskIds = _sessions[task.SessionId].TaskIds;
            taskIds.Add(task.TaskId);
            if (taskIds.Count > TaskStoreLimits.TurnsKept)
                taskIds.RemoveAt(0);
        }
        signals.Notify(task.SessionId);
        return Task.FromResult(CreateResult.Created);
    }

    public Task<int?> StartAttemptAsync(string taskId, string sessionId, string? workerId, int historyTurns, CancellationToken cancellationToken)
    {
        int attempt;
        lock (_lock)
        {
            if (!_tasks.TryGetValue(taskId, out var entry) || entry.Task.State.IsTerminal())
                return Task.FromResult<int?>(null);
            attempt = entry.Task.Attempt + 1;
            _tasks[taskId] = (entry.Task with { State = TaskState.Started, Attempt = attempt, StartedAt = clock.GetUtcNow(), Worker = workerId, HistoryTurns = historyTurns }, Expiry());
            Append(sessionId, StreamEventTypes.Started, StreamEvents.Started(taskId, attempt));
        }
        signals.Notify(sessionId);
        return Task.FromResult<int?>(attempt);
    }

    public Task<bool[]> AppendTokensAsync(IReadOnlyList<TokenAppend> appends, CancellationToken cancellationToken)
    {
        var stored = new bool[appends.Count];
        lock (_lock)
        {
            for (var i = 0; i < appends.Count; i++)
            {
                var append = appends[i];
                if (!_tasks.TryGetValue(append.TaskId, out var entry) || entry.Task.State != TaskState.Started || entry.Task.Attempt != append.Attempt)
                    continue;
                foreach (var data in append.EventData)
                    Append(append.SessionId, StreamEventTypes.Token, data);
                stored[i] = true;
            }
        }
        for (var i = 0; i < appends.Count; i++)
        {
            if (stored[i])
                signals.Notify(appends[i].SessionId);
        }
        return Task.FromResult(stored);
    }

    public Task<bool> FinishAsync(TaskOutcome outcome, string terminalEventData, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_tasks.TryGetValue(outcome.TaskId, out var entry) || entry.Task.State.IsTerminal())
                return Task.FromResult(false);
            if (outcome.Attempt is { } attempt && entry.Task.Attempt != attempt)
                return Task.FromResult(false);
            if (outcome.Worker is { } worker && entry.Task.Worker != worker)
                return Task.FromResult(false);
            _tasks[outcome.TaskId] = (entry.Task with
            {
                State = outcome.State,
                FinishedAt = clock.GetUtcNow(),
                Result = outcome.Result,
                Error = outcome.Error,
                Failure = outcome.Failure,
                FinishReason = outcome.FinishReason,
                Usage = outcome.Usage,
                ToolCalls = outcome.ToolCalls,
            }, Expiry());
            Append(outcome.SessionId, outcome.State.TerminalEvent(), terminalEventData);
            // Counted before the lock lets anyone read the terminal state: whoever sees the task ended sees it counted.
            counters?.Record(LlmStreamMetrics.Chat, outcome.State.ToWire());
            Finished(outcome.SessionId);
        }
        signals.Notify(outcome.SessionId);
        return Task.FromResult(true);
    }

    public Task<IReadOnlyList<TaskRecord>> EarlierTasksAsync(string sessionId, string taskId, int skip, int count, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_sessions.TryGetValue(sessionId, out var session) || session.ExpiresAt <= clock.GetUtcNow())
                return Task.FromResult<IReadOnlyList<TaskRecord>>([]);
            var index = session.TaskIds.IndexOf(taskId);
            var before = index < 0 ? session.TaskIds : session.TaskIds.Take(index);
            var now = clock.GetUtcNow();
            IReadOnlyList<TaskRecord> earlier = [.. before.SkipLast(skip).TakeLast(count)
                .Select(id => _tasks.TryGetValue(id, out var entry) && entry.ExpiresAt > now ? entry.Task : null)
                .OfType<TaskRecord>()];
            return Task.FromResult(earlier);
        }
    }

    public Task<TaskRecord?> GetAsync(string taskId, CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(_tasks.TryGetValue(taskId, out var entry) && entry.ExpiresAt > clock.GetUtcNow() ? entry.Task : null);
    }

    public Task<bool> DeleteAsync(string taskId, CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(_tasks.TryGetValue(taskId, out var entry) && entry.Task.State.IsTerminal() && _tasks.Remove(taskId));
    }

    public Task SetRateLimitedUntilAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_tasks.TryGetValue(taskId, out var entry))
                _tasks[taskId] = (entry.Task with { RateLimitedUntil = until }, entry.ExpiresAt);
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<StreamEntry>> ReadAsync(string sessionId, string afterId, int count, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_sessions.TryGetValue(sessionId, out var session))
                return Task.FromResult<IReadOnlyList<StreamEntry>>([]);
            var after = StreamId.Parse(afterId);
            // Ids only grow: binary search for the first entry after the one the reader saw.
            int lo = 0, hi = session.Entries.Count;
            while (lo < hi)
            {
                var mid = (lo + hi) / 2;
                if (StreamId.Parse(session.Entries[mid].Id).CompareTo(after) <= 0) lo = mid + 1; else hi = mid;
            }
            var take = Math.Min(count, session.Entries.Count - lo);
            return Task.FromResult<IReadOnlyList<StreamEntry>>(session.Entries.GetRange(lo, take));
        }
    }

    readonly Dictionary<string, (IdempotencyBinding Binding, DateTimeOffset ExpiresAt)> _idempotency = [];

    public Task<IdempotencyBinding?> BindIdempotencyKeyAsync(string scope, string key, IdempotencyBinding binding, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var k = scope + ":" + key;
            if (_idempotency.TryGetValue(k, out var bound) && bound.ExpiresAt > clock.GetUtcNow())
                return Task.FromResult<IdempotencyBinding?>(bound.Binding);
            _idempotency[k] = (binding, Expiry());
            return Task.FromResult<IdempotencyBinding?>(null);
        }
    }

    public Task ReleaseIdempotencyKeyAsync(string scope, string key, CancellationToken cancellationToken)
    {
        lock (_lock)
            _idempotency.Remove(scope + ":" + key);
        return Task.CompletedTask;
    }

    public Task<StreamEntry?> LastAsync(string sessionId, CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(_sessions.TryGetValue(sessionId, out var s) && s.ExpiresAt > clock.GetUtcNow() && s.Entries.Count > 0
                ? s.Entries[^1]
                : null);
    }

    DateTimeOffset Expiry() => clock.GetUtcNow() + retention;

    /// <summary>Appends an event to the session's stream; its id.</summary>
    string Append(string sessionId, string type, string data)
    {
        if (!_sessions.TryGetValue(sessionId, out var session))
            _sessions[sessionId] = session = new Session();
        var id = NextId();
        session.Entries.Add(new StreamEntry(id, type, data));
        session.ExpiresAt = Expiry();
        return id;
    }

    // Same shape as Redis stream ids, so clients and Last-Event-ID work the same in both modes.
    string NextId()
    {
        var ms = clock.GetUtcNow().ToUnixTimeMilliseconds();
        if (ms > _lastMs) { _lastMs = ms; _sequence = 0; }
        else _sequence++;
        return $"{_lastMs}-{_sequence}";
    }

    /// <summary>Records a session's end and drops the oldest finished sessions beyond the bound.</summary>
    void Finished(string sessionId)
    {
        _finishedHeld++;
        _finished.Enqueue((sessionId, _sessions[sessionId].Entries[^1].Id));
        while (_finishedHeld > maxFinished && _finished.TryDequeue(out var oldest))
        {
            // Only if it still ends there: a session that went on is counted from its later end.
            if (!_sessions.TryGetValue(oldest.SessionId, out var old) || old.Entries[^1].Id != oldest.EndId)
                continue;
            foreach (var taskId in old.TaskIds)
                _tasks.Remove(taskId);
            _sessions.Remove(oldest.SessionId);
            _finishedHeld--;
        }
    }

    void Sweep()
    {
        var now = clock.GetUtcNow();
        if (now < _nextSweep)
            return;
        _nextSweep = now + TimeSpan.FromMinutes(1);
        foreach (var key in _tasks.Where(t => t.Value.ExpiresAt <= now).Select(t => t.Key).ToList())
            _tasks.Remove(key);
        foreach (var key in _sessions.Where(s => s.Value.ExpiresAt <= now).Select(s => s.Key).ToList())
        {
            if (_sessions[key].Entries is [.., { IsTerminal: true }])
                _finishedHeld--;
            _sessions.Remove(key);
        }
        // The order of ends forgets the sessions that expired or went on.
        var current = _finished.Where(f => _sessions.TryGetValue(f.SessionId, out var s) && s.Entries[^1].Id == f.EndId).ToList();
        _finished.Clear();
        foreach (var f in current)
            _finished.Enqueue(f);
        foreach (var key in _idempotency.Where(i => i.Value.ExpiresAt <= now).Select(i => i.Key).ToList())
            _idempotency.Remove(key);
    }
}
