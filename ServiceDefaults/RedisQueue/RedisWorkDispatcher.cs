using LlmStream.ServiceDefaults.Bus;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.RedisQueue;

/// <summary>BROKER=redis: a command is accepted once XADD on its priority stream succeeded.</summary>
public sealed class RedisWorkDispatcher(RedisWorkQueue queue) : IWorkDispatcher
{
    public async Task DispatchAsync<T>(T message, WorkQueues queues, int priority, CancellationToken cancellationToken) where T : class
    {
        var name = queues.QueueFor(priority);
        try
        {
            await queue.SendAsync(name, Guid.NewGuid().ToString("N"), MessageBodies.TypeName(typeof(T)), MessageBodies.Serialize(message));
        }
        catch (RedisException e)
        {
            throw new BrokerUnavailableException($"Redis did not accept the message for queue '{name}': {e.Message}", e);
        }
    }
}
