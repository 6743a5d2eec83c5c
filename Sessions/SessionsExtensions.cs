using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.Sessions;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Embeddings;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

public static class SessionsExtensions
{
    /// <summary>
    /// Task records and session streams, embedding results, outcome counts and cancellation: in Redis when the deployment
    /// uses it (every process of the cluster sees the same), else in this process (the single-process default).
    /// Registers once, however many services of the process ask.
    /// </summary>
    public static IHostApplicationBuilder AddSessions(this IHostApplicationBuilder builder, Deployment deployment)
    {
        if (!builder.Properties.TryAdd(typeof(SessionsExtensions), true))
            return builder;
        builder.AddValidatedSettings<SessionOptions>();
        builder.Services.AddSingleton(sp => new StreamSignals(sp.GetService<IWakeSource>()));
        if (deployment.UsesRedis)
        {
            builder.Services.AddSingleton<RedisTaskCounters>();
            builder.Services.AddSingleton<RedisReplicaWait>();
            builder.Services.AddSingleton<ITaskCounters>(sp => sp.GetRequiredService<RedisTaskCounters>());
            builder.Services.AddSingleton<ITaskStore>(sp => new RedisTaskStore(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.ResultTtl,
                sp.GetRequiredService<RedisTaskCounters>(),
                sp.GetRequiredService<RedisReplicaWait>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.CompactFinishedStreams));
            builder.Services.AddSingleton<IEmbeddingStore>(sp => new RedisEmbeddingStore(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.ResultTtl,
                sp.GetRequiredService<RedisTaskCounters>(),
                sp.GetRequiredService<RedisReplicaWait>()));
            builder.Services.AddSingleton(sp => new TaskCancellation(sp.GetRequiredService<IConnectionMultiplexer>()));
            builder.Services.AddHostedService<RedisCancelSubscriber>();
        }
        else
        {
            builder.Services.AddSingleton<InProcessTaskCounters>();
            builder.Services.AddSingleton<ITaskCounters>(sp => sp.GetRequiredService<InProcessTaskCounters>());
            builder.Services.AddSingleton(sp => new InProcessTaskStore(
                sp.GetRequiredService<StreamSignals>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.ResultTtl,
                sp.GetRequiredService<InProcessTaskCounters>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.MaxFinishedStreams));
            builder.Services.AddSingleton<ITaskStore>(sp => sp.GetRequiredService<InProcessTaskStore>());
            builder.Services.AddSingleton<IEmbeddingStore>(sp => new InProcessEmbeddingStore(
                sp.GetRequiredService<StreamSignals>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<IOptions<SessionOptions>>().Value.ResultTtl,
                sp.GetRequiredService<InProcessTaskCounters>()));
            builder.Services.AddSingleton(_ => new TaskCancellation());
        }
        return builder;
    }

    /// <summary>For processes that serve streams (gateways): each watched session's wake channel, subscribed while it has a reader here.</summary>
    public static IHostApplicationBuilder AddStreamWakeUps(this IHostApplicationBuilder builder, Deployment deployment)
    {
        if (deployment.UsesRedis)
            builder.Services.AddSingleton<IWakeSource, RedisWakeSource>();
        return builder;
    }
}
