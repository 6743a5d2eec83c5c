using LlmStream.ServiceDefaults.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LlmStream.Messaging.Workers;

/// <summary>
/// At SIGTERM a worker stops starting work at once: the running generations get SHUTDOWN_TIMEOUT to finish, then the
/// broker's stop cancels them and their messages go back to the queue (a new attempt elsewhere, never a second answer).
/// </summary>
/// <param name="afterBound">What becomes of work after the bound, in words for the log.</param>
internal sealed class WorkIntakeStop(WorkerActivity activity, GracefulStop stop, string afterBound, ILogger<WorkIntakeStop> logger) : IHostedService
{
    CancellationTokenRegistration _registration;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registration = stop.Stopping.Register(() =>
        {
            activity.CloseAll();
            logger.LogInformation("Stopping: no new work starts here; {Running} running may finish within {Bound} s (SHUTDOWN_TIMEOUT); {AfterBound}",
                activity.Running, stop.Bound.TotalSeconds, afterBound);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _registration.Dispose();
        return Task.CompletedTask;
    }
}
