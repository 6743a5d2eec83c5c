using System.Diagnostics;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;

namespace LlmStream.Messaging.RedisStreams;

/// <summary>BROKER=redis: a command is accepted once XADD on its priority stream succeeded.</summary>
public sealed class RedisWorkDispatcher(RedisWorkQueue queue) : IWorkDispatcher
{
    public async Task DispatchAsync<T>(T message, WorkAddress address, CancellationToken cancellationToken) where T : class
    {
        var name = address.Queue;
        var messageId = Guid.NewGuid().ToString("N");
        // The entry carries this span's id, so the worker's consume continues the request's trace.
        using var activity = LlmStreamTelemetry.Source.StartActivity($"{name} send", ActivityKind.Producer);
        activity?.SetTag("messaging.system", "redis_streams");
        activity?.SetTag("messaging.destination.name", name);
        activity?.SetTag("messaging.message.id", messageId);
        try
        {
            await queue.SendAsync(name, messageId, MessageBodies.TypeName(typeof(T)), MessageBodies.Serialize(message));
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            activity.Fail(e.Message);
            throw new BrokerUnavailableException($"Redis did not accept the message for queue '{name}': {e.Message}", e);
        }
    }
}
