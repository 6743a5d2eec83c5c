using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Tasks;

/// <summary>The one Redis pub/sub subscription of a gateway process: every stream append wakes that session's local readers.</summary>
public sealed class RedisWakeSubscriber(IConnectionMultiplexer redis, StreamSignals signals) : IHostedService
{
    static readonly RedisChannel Channel = RedisChannel.Literal(RedisTaskStore.WakeChannel);

    public Task StartAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().SubscribeAsync(Channel, (_, sessionId) => signals.Notify(sessionId!));

    public Task StopAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().UnsubscribeAsync(Channel);
}
