using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Operations;

/// <summary>
/// Every HEARTBEAT_SECONDS a process that runs workers tells the cluster it is alive, with its concurrency and
/// what occupies it; and, when HEALTH_FILE is set and its health checks pass, touches that file.
/// </summary>
public sealed partial class WorkerHeartbeat(
    WorkerActivity activity,
    IWorkerRegistry registry,
    HealthCheckService health,
    IHostEnvironment environment,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<WorkerHeartbeat> logger) : BackgroundService
{
    readonly DateTimeOffset _startedAt = clock.GetUtcNow();
    bool _failing;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(options.Value.HeartbeatSeconds);
        using var timer = new PeriodicTimer(interval, clock);
        do
        {
            await BeatAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
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

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await registry.LeaveAsync(activity.Id);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFailing(logger, e.Message); // it will drop out of the list when its heartbeats stop
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker heartbeat failed: {Reason}")]
    static partial void LogFailing(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker heartbeat restored")]
    static partial void LogRecovered(ILogger logger);
}
