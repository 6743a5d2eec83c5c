using LlmStream.Messaging;
using LlmStream.Messaging.Bus;
using LlmStream.Messaging.RedisStreams;
using LlmStream.Messaging.Workers;
using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.Sessions.Counting;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Operations;

/// <summary>One queue: messages waiting (not started), running, dead-lettered, and how long the oldest has waited.</summary>
public sealed record QueueStats(
    string Name, string Work, string Priority, long Waiting, long InFlight, long? DeadLettered, double? OldestWaitingSeconds);

/// <summary>The single-process default's finished sessions held in memory, and the most it holds (MAX_FINISHED_STREAMS).</summary>
public sealed record FinishedStreams(int Held, int Limit);

public sealed record WorkerStats(
    string Id, string Service, string Host, int Pid, int Concurrency, int InFlight, IReadOnlyList<WorkLoad> Work,
    DateTimeOffset StartedAt, DateTimeOffset LastHeartbeat, double SecondsSinceHeartbeat);

public sealed record ClusterSnapshot(
    string Broker,
    IReadOnlyList<QueueStats> Queues,
    long? DeadLettered,
    IReadOnlyList<WorkerStats> Workers,
    TaskCounts Tasks,
    TaskCounts EmbeddingBatches,
    IReadOnlyList<RateLimitLevel> RateLimits,
    int RateLimitedTasks,
    IReadOnlyDictionary<string, DateTimeOffset> ProviderPauses,
    FinishedStreams? FinishedStreams = null)
{
    /// <summary>The Python original's field, for its clients: ok when the figures could be read (a failure is a problem response here).</summary>
    public string Status => "ok";

    /// <summary>The Python original's field: the generations and batches running on the workers now.</summary>
    public int ActiveTasks => Workers.Sum(w => w.InFlight);
}

/// <summary>
/// What the cluster is doing now, from the broker (queue depths, dead letters), the workers' heartbeats (who is
/// alive, what runs where) and the shared counters and rate limiter. The same figures under every broker:
/// RabbitMQ counts ready messages, so messages already delivered to a worker but waiting there for a slot
/// are added from its heartbeat; Redis Streams tell waiting from pending exactly.
/// </summary>
public sealed class ClusterStats(
    IServiceProvider services,
    IOptions<BrokerOptions> broker,
    IWorkerRegistry workers,
    ITaskCounters counters,
    IWaitingLedger waiting,
    IRateLimiter limiter,
    WorkerActivity local,
    TimeProvider clock)
{
    public async Task<ClusterSnapshot> ReadAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        // This process's own workers (BROKER=inmemory) are read live rather than from its last heartbeat.
        var alive = (await workers.AliveAsync(now)).Select(w => w.Id == local.Id ? w with { Work = local.Snapshot() } : w).ToList();
        var load = alive.SelectMany(w => w.Work).SelectMany(w => w.Queues).GroupBy(q => q.Queue)
            .ToDictionary(g => g.Key, g => (InFlight: g.Sum(q => q.InFlight), Held: g.Sum(q => q.Held)));

        var queues = new List<QueueStats>();
        var kind = broker.Value.Kind;
        foreach (var work in WorkQueues.Kinds)
        {
            var names = work.All;
            IReadOnlyList<(long Waiting, long InFlight, long? Dead, DateTimeOffset? Oldest)> depths = kind switch
            {
                BrokerKind.RabbitMq => await RabbitMqDepthsAsync(names, load, now, cancellationToken),
                BrokerKind.Redis => await RedisDepthsAsync(names),
                _ => await InMemoryDepthsAsync(names, load, now),
            };
            for (var level = 0; level < names.Count; level++)
            {
                var (queued, running, dead, oldest) = depths[level];
                queues.Add(new QueueStats(names[level], work.Work, WorkQueues.PriorityNames[level], queued, running, dead,
                    oldest is { } sent ? Math.Round(Math.Max(0, (now - sent).TotalSeconds), 3) : null));
            }
        }

        return new ClusterSnapshot(
            kind.ToString().ToLowerInvariant(),
            queues,
            queues.All(q => q.DeadLettered is null) ? null : queues.Sum(q => q.DeadLettered ?? 0),
            [.. alive.Select(w => new WorkerStats(
                w.Id, w.Service, w.Host, w.Pid, w.Work.Sum(x => x.Concurrency), w.Work.Sum(x => x.InFlight), w.Work,
                w.StartedAt, w.LastHeartbeat, Math.Round((now - w.LastHeartbeat).TotalSeconds, 3)))],
            await counters.ReadAsync(WorkQueues.Chat.Work, now),
            await counters.ReadAsync(WorkQueues.Embeddings.Work, now),
            await limiter.LevelsAsync(cancellationToken),
            await limiter.WaitingCountAsync(cancellationToken),
            await limiter.PausesAsync(cancellationToken),
            services.GetService<LlmStream.Sessions.Tasks.InProcessTaskStore>()?.FinishedStreams is { } held ? new FinishedStreams(held.Held, held.Limit) : null);
    }

    async Task<IReadOnlyList<(long, long, long?, DateTimeOffset?)>> RabbitMqDepthsAsync(
        IReadOnlyList<string> names, Dictionary<string, (int InFlight, int Held)> load, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Ready messages per queue and per error queue (MassTransit's dead letters) by passive declares.
        var depths = await services.GetRequiredService<RabbitMqWorkTopology>()
            .DepthsAsync(names.Concat(names.Select(n => n + "_error")), cancellationToken);
        var result = new List<(long, long, long?, DateTimeOffset?)>();
        for (var i = 0; i < names.Count; i++)
        {
            var (running, held) = load.GetValueOrDefault(names[i]);
            result.Add((depths[i].Ready + held, running, depths[names.Count + i].Ready, await waiting.OldestAsync(names[i], now)));
        }
        return result;
    }

    async Task<IReadOnlyList<(long, long, long?, DateTimeOffset?)>> RedisDepthsAsync(IReadOnlyList<string> names)
    {
        var queue = services.GetRequiredService<RedisWorkQueue>();
        var dead = await queue.DeadLettersByQueueAsync();
        var result = new List<(long, long, long?, DateTimeOffset?)>();
        foreach (var name in names)
        {
            var (queued, running) = await queue.DepthAsync(name);
            result.Add((queued, running, dead.GetValueOrDefault(name), await queue.OldestWaitingAsync(name)));
        }
        return result;
    }

    async Task<IReadOnlyList<(long, long, long?, DateTimeOffset?)>> InMemoryDepthsAsync(
        IReadOnlyList<string> names, Dictionary<string, (int InFlight, int Held)> load, DateTimeOffset now)
    {
        // One process: the ledger of sent-but-not-started messages is the whole truth; dead letters are not kept.
        var result = new List<(long, long, long?, DateTimeOffset?)>();
        foreach (var name in names)
            result.Add((await waiting.CountAsync(name), load.GetValueOrDefault(name).InFlight, null, await waiting.OldestAsync(name, now)));
        return result;
    }
}
