using System.Collections.Concurrent;

namespace LlmStream.ServiceDefaults.Tasks;

/// <summary>
/// Wakes the readers of a session when its stream grows. Fed by the in-process store directly, or by
/// the gateway's single Redis pub/sub subscription; readers never poll Redis per connection.
/// </summary>
public sealed class StreamSignals
{
    readonly ConcurrentDictionary<string, Watchers> _sessions = new();

    sealed class Watchers
    {
        public readonly List<StreamWatch> List = [];
    }

    /// <summary>Starts watching a session; dispose to stop. Watch before reading, so no append is missed.</summary>
    public StreamWatch Watch(string sessionId)
    {
        var watch = new StreamWatch(this, sessionId);
        while (true)
        {
            var watchers = _sessions.GetOrAdd(sessionId, _ => new Watchers());
            lock (watchers)
            {
                // A concurrent Unwatch may have just removed this entry from the map.
                if (!_sessions.TryGetValue(sessionId, out var current) || current != watchers)
                    continue;
                watchers.List.Add(watch);
                return watch;
            }
        }
    }

    public void Notify(string sessionId)
    {
        if (!_sessions.TryGetValue(sessionId, out var watchers))
            return;
        lock (watchers)
        {
            foreach (var watch in watchers.List)
                watch.Signal();
        }
    }

    /// <summary>Sessions with at least one reader in this process.</summary>
    public int WatchedSessions => _sessions.Count;

    internal void Unwatch(StreamWatch watch)
    {
        if (!_sessions.TryGetValue(watch.SessionId, out var watchers))
            return;
        lock (watchers)
        {
            watchers.List.Remove(watch);
            if (watchers.List.Count == 0)
                _sessions.TryRemove(new KeyValuePair<string, Watchers>(watch.SessionId, watchers));
        }
    }
}

/// <summary>One reader's wake-up: at most one pending signal, so a burst of appends costs one read.</summary>
public sealed class StreamWatch : IDisposable
{
    readonly StreamSignals _owner;
    readonly SemaphoreSlim _signal = new(0, 1);

    internal StreamWatch(StreamSignals owner, string sessionId)
    {
        _owner = owner;
        SessionId = sessionId;
    }

    public string SessionId { get; }

    internal void Signal()
    {
        if (_signal.CurrentCount == 0)
        {
            try { _signal.Release(); }
            catch (SemaphoreFullException) { } // another signal got there first: one pending is enough
        }
    }

    /// <summary>True when the stream may have grown; false when <paramref name="timeout"/> passed first.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);

    public void Dispose()
    {
        _owner.Unwatch(this);
        _signal.Dispose();
    }
}
