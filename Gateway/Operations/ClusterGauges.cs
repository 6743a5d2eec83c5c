using System.Diagnostics.Metrics;
using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Telemetry;

namespace LlmStream.Gateway.Operations;

/// <summary>
/// The figures of GET /stats as gauges on /metrics: queue depths, in flight, dead letters and oldest waiting age per
/// queue, workers and slots per kind of work, rate-limiter levels. Gauge callbacks cannot wait for Redis or
/// RabbitMQ, so the snapshot is refreshed in the background every few seconds and the callbacks read the last one.
/// Every gateway reports the same cluster-wide values: aggregate them with max(), not sum().
/// </summary>
public sealed partial class ClusterGauges : BackgroundService
{
    static readonly TimeSpan Refresh = TimeSpan.FromSeconds(5);

    readonly ClusterStats _stats;
    readonly ILogger<ClusterGauges> _logger;
    volatile ClusterSnapshot? _last;
    bool _failing;

    public ClusterGauges(ClusterStats stats, LlmStreamMetrics metrics, ILogger<ClusterGauges> logger)
    {
        _stats = stats;
        _logger = logger;
        var meter = metrics.Meter;
        meter.CreateObservableGauge("llmstream.queue.waiting", () => PerQueue(q => q.Waiting), "{message}",
            "Messages waiting to start, per queue (work, priority)");
        meter.CreateObservableGauge("llmstream.queue.in_flight", () => PerQueue(q => q.InFlight), "{message}",
            "Messages being worked on, per queue");
        meter.CreateObservableGauge("llmstream.queue.dead_lettered", () => PerQueue(q => q.DeadLettered), "{message}",
            "Messages in the dead letters, per queue they came from");
        meter.CreateObservableGauge("llmstream.queue.oldest_waiting_age", () => PerQueue(q => q.OldestWaitingSeconds ?? 0), "s",
            "How long the oldest waiting message of a queue has waited (0 when none waits)");
        meter.CreateObservableGauge("llmstream.workers.alive", () => PerWork(false), "{process}",
            "Worker processes alive by their heartbeats, per kind of work");
        meter.CreateObservableGauge("llmstream.workers.slots", () => PerWork(true), "{slot}",
            "Concurrent slots of the workers alive, per kind of work");
        meter.CreateObservableGauge("llmstream.rate_limit.available", () => RateLimits(), "{unit}",
            "What the cluster-wide rate limiter can grant now, per scope and kind (requests, tokens)");
        meter.CreateObservableGauge("llmstream.rate_limit.waiting_tasks",
            () => _last is { } last ? [new Measurement<long>(last.RateLimitedTasks)] : Array.Empty<Measurement<long>>(), "{task}",
            "Tasks waiting for the rate limiter");
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Refresh);
        try
        {
            do
            {
                try
                {
                    _last = await _stats.ReadAsync(stoppingToken);
                    _failing = false;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Stale gauges vanish rather than lie; one line when reading starts failing.
                    _last = null;
                    if (!_failing)
                        LogFailing(_logger, e.Message);
                    _failing = true;
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped (or disposed after a start that failed): not a fault.
        }
    }

    IEnumerable<Measurement<double>> PerQueue(Func<QueueStats, double?> value)
    {
        if (_last is not { } last)
            yield break;
        foreach (var queue in last.Queues)
        {
            if (value(queue) is { } v)
                yield return new Measurement<double>(v, new("queue", queue.Name), new("work", queue.Work), new("priority", queue.Priority));
        }
    }

    IEnumerable<Measurement<long>> PerWork(bool slots)
    {
        if (_last is not { } last)
            yield break;
        foreach (var work in WorkQueues.Kinds.Select(k => k.Work))
        {
            var loads = last.Workers.SelectMany(w => w.Work).Where(l => l.Work == work).ToList();
            yield return new Measurement<long>(slots ? loads.Sum(l => l.Concurrency) : loads.Count, new KeyValuePair<string, object?>("work", work));
        }
    }

    IEnumerable<Measurement<double>> RateLimits()
    {
        if (_last is not { } last)
            yield break;
        foreach (var level in last.RateLimits)
            yield return new Measurement<double>(level.Available, new("scope", level.Scope), new("kind", level.Kind));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster gauges for /metrics cannot be read: {Reason}")]
    static partial void LogFailing(ILogger logger, string reason);
}
