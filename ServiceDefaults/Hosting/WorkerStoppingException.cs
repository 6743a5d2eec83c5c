namespace LlmStream.ServiceDefaults.Hosting;

/// <summary>
/// A message let go because its worker is stopping (not started yet, or cut at SHUTDOWN_TIMEOUT): the broker gives it to
/// another worker. Expected, so it is not logged as a fault.
/// </summary>
public sealed class WorkerStoppingException : OperationCanceledException
{
    public WorkerStoppingException() : base("this worker is stopping; the message goes back to the broker") { }

    /// <param name="token">The consume's own token: MassTransit then counts it as a cancellation, not a fault.</param>
    public WorkerStoppingException(string message, CancellationToken token) : base(message, token) { }
}
