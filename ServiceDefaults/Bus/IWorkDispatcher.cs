namespace LlmStream.ServiceDefaults.Bus;

/// <summary>Puts a command on the queue its priority selects; returns once the broker has accepted it.</summary>
public interface IWorkDispatcher
{
    Task DispatchAsync<T>(T message, WorkQueues queues, int priority, CancellationToken cancellationToken) where T : class;
}

/// <summary>The broker did not take the message; nothing was enqueued.</summary>
public sealed class BrokerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
