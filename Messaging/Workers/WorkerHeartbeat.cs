using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LlmStream.Messaging.Workers;

/// <summary>
/// Every HEARTBEAT_SECONDS a process that runs workers tells the cluster it is alive, with its concurrency and
/// what occupies it; and, when HEALTH_FILE is set and its health checks pass, touches that file.
/// </summary>
public sealed partial class WorkerHeartbeat(
    WorkerActivity activity,
    IWorkerRegistry registry,
    HealthCheckService health,
    IHostEnvironment environment,
    IOptions<QueueOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider clock,
    ILogger<WorkerHeartbeat> logger) : BackgroundService
{
    readonly DateTimeOffset _startedAt = clock.GetUtcNow();
    // Beats go on while a stopping process finishes its running work, and end once the host has stopped: a worker
    // is listed for as long as it may still write a task's outcome (the gateway's orphan check relies on it).
    readonly CancellationTokenSource _beating = new();
    bool _failing;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopped.Register(Leave);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(options.Value.HeartbeatSeconds);
        using var timer = new PeriodicTimer(interval, clock);
        try
        {
            do
            {
                await BeatAsync(_beating.Token);
            }
            while (await timer.WaitForNextTickAsync(_beating.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (_beating.IsCancellationRequested)
        {
        }
    }

    async Task BeatAsync(CancellationToken cancellationToken)
    {
        try
        {
            await registry.BeatAsync(new WorkerBeat(
                activity.Id, environment.ApplicationName, Environment.MachineName, Environment.ProcessId, _startedAt,
                clock.GetUtcNow(), options.Value.HeartbeatSeconds, activity.Snapshot()));
            if (options.Value.HealthFile is { Length: > 0 } file)
                await TouchWhenHealthyAsync(file, cancellationToken);
            if (_failing)
                LogRecovered(logger);
            _failing = false;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // One line when heartbeats start failing, not one per beat.
            if (!_failing)
                LogFailing(logger, e.Message);
            _failing = true;
        }
    }

    async Task TouchWhenHealthyAsync(string file, CancellationToken cancellationToken)
    {
        var report = await health.CheckHealthAsync(cancellationToken);
        if (report.Status == HealthStatus.Unhealthy)
            return;
        if (File.Exists(file))
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow);
        else
            await File.WriteAllTextAsync(file, "", cancellationToken);
    }

    /// <summary>Beats on until the host has stopped (<see cref="Leave"/>).</summary>
    public override Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The host has stopped, its work with it: the worker leaves the list at once instead of after three missed beats.</summary>
    void Leave()
    {
        _beating.Cancel();
        try
        {
            // ApplicationStopped callbacks are synchronous; a Redis that does not answer must not hold the exit.
            registry.LeaveAsync(activity.Id).Wait(TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFailing(logger, e.GetBaseException().Message); // it will drop out of the list when its heartbeats stop
        }
    }

    public override void Dispose()
    {
        _beating.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker heartbeat failed: {Reason}")]
    static partial void LogFailing(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker heartbeat restored")]
    static partial void LogRecovered(ILogger logger);
}
