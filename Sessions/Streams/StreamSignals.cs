using System.Collections.Concurrent;
using LlmStream.ServiceDefaults.Redis;

namespace LlmStream.Sessions.Streams;

/// <summary>
/// Where a process hears that a watched stream grew, beyond its own writes: the Redis wake channels, subscribed per
/// watched key while it has a reader here. Null in the single-process default, whose store signals directly.
/// </summary>
public interface IWakeSource
{
    /// <summary>Subscribes to the wake-ups of <paramref name="watchKey"/> (in the shard of <paramref name="shardId"/>); dispose to unsubscribe.</summary>
    Task<IAsyncDisposable> SubscribeAsync(string watchKey, string shardId, StreamSignals signals);

    /// <summary>Raised when wake-ups may have been lost: a connection failed or came back, or slots moved.</summary>
    event Action? WakesMayBeLost;
}

/// <summary>
/// Wakes the readers of a session when its stream grows. Fed by the in-process store directly, or by the session's
/// Redis wake channel, subscribed while this process has a reader of it: readers never poll Redis, and a gateway hears
/// only the sessions its own readers follow. Token events can come with the wake (<see cref="Push"/>), so a reader
/// that is up to date writes them without a read.
/// </summary>
public sealed class StreamSignals
{
    /// <summary>After wakes may have been lost, readers read the store at each quiet interval for this long.</summary>
    public static readonly TimeSpan Unsettled = TimeSpan.FromSeconds(60);

    readonly IWakeSource? _source;
    readonly ConcurrentDictionary<string, Watchers> _sessions = new();
    long _unsettledUntil;

    public StreamSignals(IWakeSource? source = null)
    {
        _source = source;
        if (source is not null)
            source.WakesMayBeLost += OnWakesMayBeLost;
    }

    /// <summary>
    /// True for a while after wake-ups may have been lost (<see cref="IWakeSource.WakesMayBeLost"/>): an idle reader then
    /// reads the store at each quiet interval; otherwise it trusts its wake channel and an idle stream costs no read.
    /// </summary>
    public bool WakesMayBeLost => Environment.TickCount64 < Volatile.Read(ref _unsettledUntil);

    /// <summary>Every reader reads the store now, and idle ones again at each quiet interval while <see cref="WakesMayBeLost"/>.</summary>
    void OnWakesMayBeLost()
    {
        Volatile.Write(ref _unsettledUntil, Environment.TickCount64 + (long)Unsettled.TotalMilliseconds);
        foreach (var key in _sessions.Keys)
            Notify(key);
    }
    ConcurrentDictionary<string, Watchers>.AlternateLookup<ReadOnlySpan<char>> BySpan => _sessions.GetAlternateLookup<ReadOnlySpan<char>>();

    sealed class Watchers
    {
        public readonly List<StreamWatch> List = [];
        public Task<IAsyncDisposable>? Subscription;
    }

    /// <summary>
    /// Starts watching a session (or another key, in the shard of <paramref name="shardId"/>: an embedding batch's end);
    /// dispose to stop. Watch before reading, so no append is missed: with Redis it returns once the key's wake
    /// channel is subscribed.
    /// </summary>
    public async ValueTask<StreamWatch> WatchAsync(string key, string? shardId = null)
    {
        var watch = new StreamWatch(this, key);
        Task<IAsyncDisposable>? subscribed = null;
        while (true)
        {
            var watchers = _sessions.GetOrAdd(key, _ => new Watchers());
            lock (watchers)
            {
                // A concurrent Unwatch may have just removed this entry from the map.
                if (!_sessions.TryGetValue(key, out var current) || current != watchers)
                    continue;
                watchers.List.Add(watch);
                if (_source is not null)
                    subscribed = watchers.Subscription ??= _source.SubscribeAsync(key, shardId ?? key, this);
                break;
            }
        }
        if (subscribed is null)
            return watch;
        try
        {
            await subscribed;
            return watch;
        }
        catch
        {
            watch.Dispose();
            throw;
        }
    }

    /// <summary>The session's stream grew: its readers read what is new from the store.</summary>
    public void Notify(string sessionId) => Notify(sessionId.AsSpan());

    public void Notify(ReadOnlySpan<char> sessionId)
    {
        if (!BySpan.TryGetValue(sessionId, out var watchers))
            return;
        lock (watchers)
        {
            foreach (var watch in watchers.List)
                watch.Signal();
        }
    }

    /// <summary>True when a reader in this process watches the session (so its pushed events are worth decoding).</summary>
    public bool IsWatched(ReadOnlySpan<char> sessionId) => BySpan.ContainsKey(sessionId);

    /// <summary>
    /// The session's stream grew by <paramref name="entries"/>, which directly follow the entry <paramref name="previousId"/>:
    /// readers that have written up to there write them as they are; the others read from the store.
    /// </summary>
    public void Push(ReadOnlySpan<char> sessionId, string previousId, StreamEntry[] entries)
    {
        if (!BySpan.TryGetValue(sessionId, out var watchers))
            return;
        lock (watchers)
        {
            foreach (var watch in watchers.List)
                watch.Push(previousId, entries);
        }
    }

    /// <summary>Sessions with at least one reader in this process.</summary>
    public int WatchedSessions => _sessions.Count;

    internal void Unwatch(StreamWatch watch)
    {
        if (!_sessions.TryGetValue(watch.SessionId, out var watchers))
            return;
        Task<IAsyncDisposable>? subscription = null;
        lock (watchers)
        {
            watchers.List.Remove(watch);
            if (watchers.List.Count == 0 && _sessions.TryRemove(new KeyValuePair<string, Watchers>(watch.SessionId, watchers)))
                subscription = watchers.Subscription;
        }
        if (subscription is not null)
            _ = UnsubscribeAsync(subscription);
    }

    /// <summary>The last reader of a key left: its wake channel is given up (a new reader subscribes afresh).</summary>
    static async Task UnsubscribeAsync(Task<IAsyncDisposable> subscription)
    {
        try
        {
            await (await subscription).DisposeAsync();
        }
        catch (Exception e) when (e.IsRedisFailure() || e is ObjectDisposedException)
        {
            // Never subscribed, or the connection is gone: nothing left to give up.
        }
    }
}

/// <summary>
/// One reader's wake-up: at most one pending signal, so a burst of appends costs one wake, and the token
/// events pushed since the reader last took them.
/// </summary>
public sealed class StreamWatch : IDisposable
{
    /// <summary>A reader that falls this far behind (a stalled client) drops what was pushed and reads from the store later: memory stays bounded.</summary>
    public const int MaxPushed = 512;

    readonly StreamSignals _owner;
    readonly SemaphoreSlim _signal = new(0, 1);
    readonly Lock _lock = new();
    readonly List<StreamEntry> _pushed = [];
    StreamId _pushedAfter;
    bool _mustRead = true; // the first look always reads the store

    internal StreamWatch(StreamSignals owner, string sessionId)
    {
        _owner = owner;
        SessionId = sessionId;
    }

    public string SessionId { get; }

    internal void Signal()
    {
        lock (_lock)
        {
            _mustRead = true;
            _pushed.Clear();
        }
        Wake();
    }

    internal void Push(string previousId, StreamEntry[] entries)
    {
        lock (_lock)
        {
            if (!_mustRead)
            {
                if (_pushed.Count == 0)
                    _pushedAfter = StreamId.Parse(previousId);
                else if (_pushed[^1].Id != previousId)
                    _mustRead = true; // a wake went missing in between: only the store has the whole stream
                if (_mustRead || _pushed.Count + entries.Length > MaxPushed)
                {
                    _mustRead = true;
                    _pushed.Clear();
                }
                else
                {
                    _pushed.AddRange(entries);
                }
            }
        }
        Wake();
    }

    /// <summary>Makes the next <see cref="TakePushed"/> answer null: the reader reads the store.</summary>
    void ReadStoreNext()
    {
        lock (_lock)
        {
            _mustRead = true;
            _pushed.Clear();
        }
    }

    /// <summary>
    /// The pushed entries after <paramref name="lastId"/>, when they follow on from it (empty when nothing was pushed);
    /// null when the reader must read the store instead: something other than tokens was appended, or a gap.
    /// </summary>
    public IReadOnlyList<StreamEntry>? TakePushed(string lastId)
    {
        lock (_lock)
        {
            if (_mustRead)
            {
                _mustRead = false;
                _pushed.Clear();
                return null;
            }
            if (_pushed.Count == 0)
                return [];
            var last = StreamId.Parse(lastId);
            if (_pushedAfter.CompareTo(last) > 0)
            {
                _pushed.Clear(); // the reader has not seen the entries just before these
                return null;
            }
            var after = new List<StreamEntry>(_pushed.Count);
            foreach (var entry in _pushed)
            {
                if (StreamId.Parse(entry.Id).CompareTo(last) > 0)
                    after.Add(entry); // older ones the reader already read from the store
            }
            _pushed.Clear();
            return after;
        }
    }

    /// <summary>
    /// The entries after <paramref name="lastId"/>: those pushed with wakes when they follow on from it, else a page of
    /// up to <paramref name="pageSize"/> from the store. After a full page the next look reads the store again.
    /// </summary>
    public async Task<IReadOnlyList<StreamEntry>> ReadAfterAsync(ISessionStreams store, string lastId, int pageSize, CancellationToken cancellationToken)
    {
        if (TakePushed(lastId) is { } pushed)
            return pushed;
        var page = await store.ReadAsync(SessionId, lastId, pageSize, cancellationToken);
        if (page.Count == pageSize)
            ReadStoreNext(); // there may be more in the store
        return page;
    }

    void Wake()
    {
        if (_signal.CurrentCount == 0)
        {
            try { _signal.Release(); }
            catch (SemaphoreFullException) { } // another signal got there first: one pending is enough
        }
    }

    /// <summary>
    /// True when the stream may have grown; false when <paramref name="timeout"/> passed first. While wakes may have
    /// been lost (a dropped connection, moved slots) the next look then reads the store: a wake lost that way shows up
    /// there at the latest. Otherwise a quiet interval reads nothing.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (await _signal.WaitAsync(timeout, cancellationToken))
            return true;
        if (_owner.WakesMayBeLost)
            ReadStoreNext();
        return false;
    }

    public void Dispose()
    {
        _owner.Unwatch(this);
        _signal.Dispose();
    }
}
