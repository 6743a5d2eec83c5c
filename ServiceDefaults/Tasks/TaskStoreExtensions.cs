using LlmStream.ServiceDefaults.Embeddings;
using LlmStream.ServiceDefaults.Operations;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Tasks;

public static class TaskStoreExtensions
{
    /// <summary>Task and embedding stores: Redis when REDIS_URL is set, else the in-process stores of the single-process default.</summary>
    public static IHostApplicationBuilder AddTaskStore(this IHostApplicationBuilder builder)
    {
        var broker = builder.Configuration.Settings<BrokerOptions>();
        builder.Services.AddSingleton<StreamSignals>();
        builder.Services.AddSingleton<TokenBatcher>();
        builder.Services.AddSingleton(TimeProvider.System);

        if (broker.UsesRedisStore && RedisUrl.TryParse(broker.RedisUrl!, out var redisOptions, out _))
        {
            builder.Services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(redisOptions));
            builder.Services.AddSingleton<ITaskStore>(sp => new RedisTaskStore(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<WorkerOptions>>().Value.ResultTtl,
                sp.GetRequiredService<RedisTaskCounters>()));
            builder.Services.AddSingleton<IEmbeddingStore>(sp => new RedisEmbeddingStore(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<WorkerOptions>>().Value.ResultTtl,
                sp.GetRequiredService<RedisTaskCounters>()));
            builder.Services.AddSingleton(sp => new TaskCancellation(sp.GetRequiredService<IConnectionMultiplexer>()));
            builder.Services.AddHostedService<RedisCancelSubscriber>();
        }
        else
        {
            builder.Services.AddSingleton<ITaskStore>(sp => new InProcessTaskStore(
                sp.GetRequiredService<StreamSignals>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<IOptions<WorkerOptions>>().Value.ResultTtl,
                sp.GetRequiredService<InProcessTaskCounters>()));
            builder.Services.AddSingleton<IEmbeddingStore>(sp => new InProcessEmbeddingStore(
                sp.GetRequiredService<StreamSignals>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<IOptions<WorkerOptions>>().Value.ResultTtl,
                sp.GetRequiredService<InProcessTaskCounters>()));
            builder.Services.AddSingleton(_ => new TaskCancellation());
        }
        return builder;
    }

    /// <summary>For processes that serve streams: one pub/sub subscription wakes all local readers.</summary>
    public static IHostApplicationBuilder AddStreamWakeUps(this IHostApplicationBuilder builder)
    {
        var broker = builder.Configuration.Settings<BrokerOptions>();
        if (broker.UsesRedisStore)
            builder.Services.AddHostedService<RedisWakeSubscriber>();
        return builder;
    }
}
