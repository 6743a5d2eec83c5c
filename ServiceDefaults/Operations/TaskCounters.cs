using System.Globalization;
using LlmStream.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Operations;

/// <summary>How tasks of one kind of work ended: totals since the counters began, and over the last minute.</summary>
public sealed record TaskCounts(long Completed, long Failed, long Cancelled, RecentCounts LastMinute);

public sealed record RecentCounts(long Completed, long Failed, long Cancelled)
{
    /// <summary>Tasks finished per second over the minute, whatever their outcome.</summary>
    public double PerSecond => Math.Round((Completed + Failed + Cancelled) / 60.0, 3);
}

/// <summary>
/// Counts tasks as they end: cluster-wide for /stats, and in the process's llmstream.tasks.finished metric. The
/// stores call it once per task, from the call that wrote the terminal state (a worker's completion or failure, a
/// gateway's cancel or refused send), so a task is never counted twice; throughput comes from per-second buckets
/// over the last minute.
/// </summary>
public interface ITaskCounters
{
    /// <param name="work">chat or embeddings.</param>
    /// <param name="outcome">completed, failed or cancelled.</param>
    void Record(string work, string outcome);

    Task<TaskCounts> ReadAsync(string work, DateTimeOffset now);
}

public static class TaskOutcomeNames
{
    public static readonly IReadOnlyList<string> All = ["completed", "failed", "cancelled"];
}

/// <summary>A total per outcome and a bucket per second (kept two minutes) in Redis.</summary>
public sealed class RedisTaskCounters(IConnectionMultiplexer redis, LlmStreamMetrics metrics) : ITaskCounters
{
    static string Total(string work, string outcome) => $"llmstream:stats:{work}:{outcome}";

    static string Bucket(string work, string outcome, long second) => $"{Total(work, outcome)}:{second.ToString(CultureInfo.InvariantCulture)}";

    public void Record(string work, string outcome)
    {
        metrics.TaskFinished(work, outcome);
        // Fire and forget: counting must not slow down or fail the task it counts.
        var db = redis.GetDatabase();
        var bucket = Bucket(work, outcome, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        db.StringIncrement(Total(work, outcome), flags: CommandFlags.FireAndForget);
        db.StringIncrement(bucket, flags: CommandFlags.FireAndForget);
        db.KeyExpire(bucket, TimeSpan.FromMinutes(2), CommandFlags.FireAndForget);
    }

    public async Task<TaskCounts> ReadAsync(string work, DateTimeOffset now)
    {
        var db = redis.GetDatabase();
        var second = now.ToUnixTimeSeconds();
        var totals = new long[3];
        var recent = new long[3];
        for (var i = 0; i < 3; i++)
        {
            var outcome = TaskOutcomeNames.All[i];
            totals[i] = (long?)await db.StringGetAsync(Total(work, outcome)) ?? 0;
            var buckets = await db.StringGetAsync([.. Enumerable.Range(0, 60).Select(s => (RedisKey)Bucket(work, outcome, second - s))]);
            recent[i] = buckets.Sum(b => (long?)b ?? 0);
        }
        return new TaskCounts(totals[0], totals[1], totals[2], new RecentCounts(recent[0], recent[1], recent[2]));
    }
}

/// <summary>The single-process default.</summary>
public sealed class InProcessTaskCounters(TimeProvider clock, LlmStreamMetrics metrics) : ITaskCounters
{
    readonly Lock _lock = new();
    readonly Dictionary<(string Work, string Outcome), long> _totals = [];
    readonly Dictionary<(string Work, string Outcome, long Second), long> _buckets = [];

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
