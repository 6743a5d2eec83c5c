namespace LlmStream.Messaging;

/// <summary>Puts a command on the queue its priority selected; returns once the broker has accepted it.</summary>
public interface IWorkDispatcher
{
    Task DispatchAsync<T>(T message, WorkAddress address, CancellationToken cancellationToken) where T : class;
}

/// <summary>
/// The broker refused the message, or did not say it took it in time (a lost or late publisher confirm): in the
/// second case the message may be in the queue all the same.
/// </summary>
public sealed class BrokerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
