using System.Text.Json;
using StackExchange.Redis;

namespace LlmStream.Messaging.Workers;

/// <summary>What a worker process says about itself every few seconds.</summary>
public sealed record WorkerBeat(
    string Id, string Service, string Host, int Pid, DateTimeOffset StartedAt, DateTimeOffset LastHeartbeat, int IntervalSeconds, IReadOnlyList<WorkLoad> Work)
{
    /// <summary>Alive until three heartbeats in a row are missed.</summary>
    public bool IsAliveAt(DateTimeOffset now) => now - LastHeartbeat < TimeSpan.FromSeconds(3 * IntervalSeconds);
}

/// <summary>The worker processes of the cluster, known by their heartbeats.</summary>
public interface IWorkerRegistry
{
    Task BeatAsync(WorkerBeat beat);

    /// <summary>Workers that have not missed three heartbeats in a row.</summary>
    Task<IReadOnlyList<WorkerBeat>> AliveAsync(DateTimeOffset now);

    /// <summary>A worker that stops cleanly leaves at once instead of timing out.</summary>
    Task LeaveAsync(string id);

    /// <summary>When the worker last beat, while the registry still remembers it (an hour; not after it left cleanly).</summary>
    Task<DateTimeOffset?> LastSeenAsync(string id);
}

/// <summary>Heartbeats in Redis: a hash of the last beat per worker and a sorted set of when each was seen.</summary>
public sealed class RedisWorkerRegistry(IConnectionMultiplexer redis) : IWorkerRegistry
{
    // One hash tag: a beat changes both in one transaction, which a Redis Cluster takes within one slot only.
    static readonly RedisKey Beats = "llmstream:{workers}";
    static readonly RedisKey Seen = "llmstream:{workers}:seen";
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    IDatabase Db => redis.GetDatabase();

    public async Task BeatAsync(WorkerBeat beat)
    {
        var transaction = Db.CreateTransaction();
        _ = transaction.HashSetAsync(Beats, beat.Id, JsonSerializer.Serialize(beat, Json));
        _ = transaction.SortedSetAddAsync(Seen, beat.Id, beat.LastHeartbeat.ToUnixTimeMilliseconds());
        await transaction.ExecuteAsync();
    }

    public async Task<IReadOnlyList<WorkerBeat>> AliveAsync(DateTimeOffset now)
    {
        var cutoff = (now - TimeSpan.FromSeconds(3 * 60)).ToUnixTimeMilliseconds(); // the longest heartbeat interval allowed, thrice
        // Workers gone for long are forgotten; the recently dead simply stop being listed.
        var forgotten = await Db.SortedSetRangeByScoreAsync(Seen, double.NegativeInfinity, (now - TimeSpan.FromHours(1)).ToUnixTimeMilliseconds());
        if (forgotten.Length > 0)
        {
            await Db.HashDeleteAsync(Beats, forgotten);
            await Db.SortedSetRemoveAsync(Seen, forgotten);
        }

        var alive = await Db.SortedSetRangeByScoreAsync(Seen, cutoff, double.PositiveInfinity);
        if (alive.Length == 0)
            return [];
        var beats = await Db.HashGetAsync(Beats, alive);
        return [.. beats.Where(b => b.HasValue).Select(b => JsonSerializer.Deserialize<WorkerBeat>(b.ToString(), Json)!).Where(b => b.IsAliveAt(now)).OrderBy(b => b.Service).ThenBy(b => b.StartedAt)];
    }

    public async Task LeaveAsync(string id)
    {
        await Db.HashDeleteAsync(Beats, id);
        await Db.SortedSetRemoveAsync(Seen, id);
    }

    public async Task<DateTimeOffset?> LastSeenAsync(string id) =>
        await Db.SortedSetScoreAsync(Seen, id) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds((long)ms) : null;
}

/// <summary>The single-process default: the gateway's own in-process workers.</summary>
public sealed class InProcessWorkerRegistry : IWorkerRegistry
{
    readonly Lock _lock = new();
    readonly Dictionary<string, WorkerBeat> _beats = [];

    public Task BeatAsync(WorkerBeat beat)
    {
        lock (_lock)
            _beats[beat.Id] = beat;
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<WorkerBeat>> AliveAsync(DateTimeOffset now)
    {
        lock (_lock)
            return Task.FromResult<IReadOnlyList<WorkerBeat>>([.. _beats.Values.Where(b => b.IsAliveAt(now))]);
    }

    public Task LeaveAsync(string id)
    {
        lock (_lock)
            _beats.Remove(id);
        return Task.CompletedTask;
    }

    public Task<DateTimeOffset?> LastSeenAsync(string id)
    {
        lock (_lock)
            return Task.FromResult(_beats.TryGetValue(id, out var beat) ? beat.LastHeartbeat : (DateTimeOffset?)null);
    }
}
