using Microsoft.Extensions.Configuration;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// The shape of this deployment, decided once from the validated settings and passed to every registration: which
/// broker carries work, and whether task records, streams, rate limits and heartbeats live in Redis or in this process.
/// </summary>
/// <param name="RabbitMq">The RabbitMQ node or nodes, with BROKER=rabbitmq.</param>
/// <param name="QuorumQueues">RABBITMQ_QUEUE_TYPE=quorum: the work queues are replicated quorum queues.</param>
public sealed record Deployment(BrokerKind Broker, RabbitMqAddress? RabbitMq, ConfigurationOptions? Redis, bool QuorumQueues = false)
{
    /// <summary>Task records, streams, rate limits, heartbeats: in Redis (a cluster) rather than in this process.</summary>
    public bool UsesRedis => Redis is not null;

    /// <summary>BROKER=inmemory: the workers run inside the gateway (make run).</summary>
    public bool IsSingleProcess => Broker == BrokerKind.InMemory;

    /// <summary>
    /// Reads BROKER, RABBITMQ_URL and REDIS_URL and validates them here, before anything is registered. Invalid, they
    /// give the single-process shape, and the validation at start stops the process with the setting named before
    /// anything runs.
    /// </summary>
    public static Deployment From(IConfiguration configuration)
    {
        var broker = configuration.Settings<BrokerOptions>();
        if (!new BrokerOptionsValidator().Validate(null, broker).Succeeded)
            return new Deployment(BrokerKind.InMemory, null, null);
        return new Deployment(broker.Kind,
            broker.Kind == BrokerKind.RabbitMq && RabbitMqUrl.TryParse(broker.RabbitMqUrl!, out var rabbitMq, out _) ? rabbitMq : null,
            broker.UsesRedisStore && RedisUrl.TryParse(broker.RedisUrl!, out var redis, out _) ? redis : null,
            broker.Kind == BrokerKind.RabbitMq && broker.QuorumQueues);
    }
}
