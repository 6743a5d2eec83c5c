using System.Globalization;
using LlmStream.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace LlmStream.Sessions.Counting;

/// <summary>How tasks of one kind of work ended: totals since the counters began, and over the last minute.</summary>
public sealed record TaskCounts(long Completed, long Failed, long Cancelled, RecentCounts LastMinute);

public sealed record RecentCounts(long Completed, long Failed, long Cancelled)
{
    /// <summary>Tasks finished per second over the minute, whatever their outcome.</summary>
    public double PerSecond => Math.Round((Completed + Failed + Cancelled) / 60.0, 3);
}

/// <summary>
/// How tasks ended, cluster-wide, for /stats. A task is counted once, by the store call that wrote its terminal state
/// (a worker's completion or failure, a gateway's cancel or refused send), and in that call's own step: whoever sees a
/// task ended sees it counted. Throughput comes from per-second buckets over the last minute.
/// </summary>
public interface ITaskCounters
{
    /// <param name="work">chat or embeddings.</param>
    Task<TaskCounts> ReadAsync(string work, DateTimeOffset now);
}

public static class TaskOutcomeNames
{
    public static readonly IReadOnlyList<string> All = ["completed", "failed", "cancelled"];
}

/// <summary>
/// A total per outcome and a bucket per second (kept two minutes) in Redis, in each shard (<see cref="SessionShards"/>).
/// The Redis stores' finish scripts increment those of the task's shard (<see cref="Keys"/>, <see cref="IncrementLua"/>)
/// in the script that ends the task, so a count is never lost between the two nor seen late; a read adds the shards up.
/// </summary>
public sealed class RedisTaskCounters(IConnectionMultiplexer redis, LlmStreamMetrics metrics) : ITaskCounters
{
    static string Total(string tag, string work, string outcome) => $"llmstream:{tag}:stats:{work}:{outcome}";

    static string Bucket(string tag, string work, string outcome, long second) => $"{Total(tag, work, outcome)}:{second.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// The total and this second's bucket of <paramref name="outcome"/> in the shard <paramref name="tag"/> (the task's),
    /// the keys a finish script passes to <see cref="IncrementLua"/>.
    /// </summary>
    public RedisKey[] Keys(string work, string outcome, string tag) =>
        [Total(tag, work, outcome), Bucket(tag, work, outcome, DateTimeOffset.UtcNow.ToUnixTimeSeconds())];

    /// <summary>Lua that counts one task, given the index in KEYS of the first of <see cref="Keys"/>; nothing when they were not passed.</summary>
    public static string IncrementLua(int firstKey) => $"""
        if #KEYS >= {firstKey + 1} then
          redis.call('INCR', KEYS[{firstKey}])
          redis.call('INCR', KEYS[{firstKey + 1}])
          redis.call('EXPIRE', KEYS[{firstKey + 1}], 120)
        end
        """;

    /// <summary>After a finish script has counted a task: this process's llmstream.tasks.finished metric.</summary>
    public void Counted(string work, string outcome) => metrics.TaskFinished(work, outcome);

    public async Task<TaskCounts> ReadAsync(string work, DateTimeOffset now)
    {
        var db = redis.GetDatabase();
        var second = now.ToUnixTimeSeconds();
        // One read per shard (its keys share a slot), all at once.
        var shards = await Task.WhenAll(SessionShards.AllTags.Select(tag => db.StringGetAsync(
        [
            .. TaskOutcomeNames.All.Select(outcome => (RedisKey)Total(tag, work, outcome)),
            .. TaskOutcomeNames.All.SelectMany(outcome => Enumerable.Range(0, 60).Select(s => (RedisKey)Bucket(tag, work, outcome, second - s))),
        ])));
        var totals = new long[3];
        var recent = new long[3];
        foreach (var values in shards)
        {
            for (var i = 0; i < 3; i++)
            {
                totals[i] += (long?)values[i] ?? 0;
                for (var s = 0; s < 60; s++)
                    recent[i] += (long?)values[3 + i * 60 + s] ?? 0;
            }
        }
        return new TaskCounts(totals[0], totals[1], totals[2], new RecentCounts(recent[0], recent[1], recent[2]));
    }
}

/// <summary>The single-process default; the in-process stores count a task under the lock that ends it.</summary>
public sealed class InProcessTaskCounters(TimeProvider clock, LlmStreamMetrics metrics) : ITaskCounters
{
    readonly Lock _lock = new();
    readonly Dictionary<(string Work, string Outcome), long> _totals = [];
    readonly Dictionary<(string Work, string Outcome, long Second), long> _buckets = [];

    /// <param name="work">chat or embeddings.</param>
    /// <param name="outcome">completed, failed or cancelled.</param>
    public void Record(string work, string outcome)
    {
        metrics.TaskFinished(work, outcome);
        var second = clock.GetUtcNow().ToUnixTimeSeconds();
        lock (_lock)
        {
            _totals[(work, outcome)] = _totals.GetValueOrDefault((work, outcome)) + 1;
            _buckets[(work, outcome, second)] = _buckets.GetValueOrDefault((work, outcome, second)) + 1;
            foreach (var old in _buckets.Keys.Where(k => k.Second < second - 120).ToList())
                _buckets.Remove(old);
        }
    }

    public Task<TaskCounts> ReadAsync(string work, DateTimeOffset now)
    {
        var second = now.ToUnixTimeSeconds();
        lock (_lock)
        {
            long Total(string outcome) => _totals.GetValueOrDefault((work, outcome));
            long Recent(string outcome) => _buckets.Where(b => b.Key.Work == work && b.Key.Outcome == outcome && b.Key.Second > second - 60).Sum(b => b.Value);
            return Task.FromResult(new TaskCounts(Total("completed"), Total("failed"), Total("cancelled"),
                new RecentCounts(Recent("completed"), Recent("failed"), Recent("cancelled"))));
        }
    }
}
