using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Hosting;

public sealed class StopOptions
{
    /// <summary>After SIGTERM, how long running generations (and /v1 requests waiting on them) may go on before they are cut.</summary>
    [ConfigurationKeyName("SHUTDOWN_TIMEOUT"), Range(1, 3600, ErrorMessage = "SHUTDOWN_TIMEOUT must be between {1} and {2} seconds")]
    public int ShutdownTimeoutSeconds { get; set; } = 20;

    public TimeSpan ShutdownTimeout => TimeSpan.FromSeconds(ShutdownTimeoutSeconds);

    /// <summary>The settings within their valid range, for what is read before validation runs.</summary>
    public StopOptions Clamped() => new() { ShutdownTimeoutSeconds = Math.Clamp(ShutdownTimeoutSeconds, 1, 3600) };

    /// <summary>The host's own limit: the bound, then a few seconds to hand unfinished work back and leave.</summary>
    public TimeSpan HostShutdownTimeout => ShutdownTimeout + TimeSpan.FromSeconds(10);
}

/// <summary>
/// The two moments of a clean stop. <see cref="Stopping"/>: SIGTERM arrived, take no new work (no new generation
/// starts, new requests are refused, readers of /stream are let go to resume elsewhere). <see cref="Expired"/>:
/// SHUTDOWN_TIMEOUT later, what still runs is cut (a generation's message goes back to the broker, for another worker
/// to run as a new attempt).
/// </summary>
public sealed class GracefulStop : IDisposable
{
    readonly CancellationTokenSource _expired = new();
    readonly CancellationTokenRegistration _onStopping;

    public GracefulStop(IHostApplicationLifetime lifetime, IOptions<StopOptions> options)
    {
        Bound = options.Value.ShutdownTimeout;
        Stopping = lifetime.ApplicationStopping;
        _onStopping = lifetime.ApplicationStopping.Register(() => _expired.CancelAfter(Bound));
    }

    public TimeSpan Bound { get; }

    public CancellationToken Stopping { get; }

    public CancellationToken Expired => _expired.Token;

    public bool IsStopping => Stopping.IsCancellationRequested;

    public void Dispose()
    {
        _onStopping.Dispose();
        _expired.Dispose();
    }
}
