using LlmStream.ServiceDefaults.Health;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Redis;

public static class RedisConnection
{
    /// <summary>
    /// One connection per process when the deployment uses Redis (StackExchange.Redis multiplexes everything over it),
    /// and its readiness check.
    /// </summary>
    public static IServiceCollection AddRedisConnection(this IServiceCollection services, Deployment deployment)
    {
        if (deployment.Redis is not { } options)
            return services;
        services.AddSingleton<IConnectionMultiplexer>(_ =>
        {
            var redis = ConnectionMultiplexer.Connect(options);
            RedisTopology.FollowFailovers(redis);
            return redis;
        });
        services.AddHealthChecks().AddCheck<RedisHealthCheck>("redis", tags: [HealthTags.Ready]);
        return services;
    }
}
