using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.RateLimiting;
using LlmStream.ServiceDefaults.RedisQueue;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LlmStream.Gateway;

/// <summary>GET /stats: what the cluster is doing now.</summary>
public static class StatsApi
{
    public static IEndpointRouteBuilder MapStatsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/stats", GetStats).WithTags("Operations").WithSummary("Queue depths and rate-limiter levels");
        return app;
    }

    public sealed record QueueStats(string Name, string Priority, long Waiting, long? InFlight);

    public sealed record Stats(
        string Broker, IReadOnlyList<QueueStats>? Queues, long? DeadLettered,
        IReadOnlyList<RateLimitLevel> RateLimits, int RateLimitedTasks, IReadOnlyDictionary<string, DateTimeOffset> ProviderPauses);

    static async Task<Ok<Stats>> GetStats(IRateLimiter limiter, IServiceProvider services, Microsoft.Extensions.Options.IOptions<ServiceDefaults.Settings.BrokerOptions> broker, CancellationToken cancellationToken)
    {
        List<QueueStats>? queues = null;
        long? dead = null;
        string[] priorities = ["high", "default", "low"];
        if (broker.Value.Kind == ServiceDefaults.Settings.BrokerKind.RabbitMq)
        {
            // Ready messages per queue; RabbitMQ's AMQP API does not tell unacknowledged (in-flight) ones apart.
            var names = WorkQueues.Chat.All;
            var depths = await services.GetRequiredService<RabbitMqWorkTopology>()
                .DepthsAsync(names.Concat(names.Select(n => n + "_error")), cancellationToken);
            queues = [.. names.Select((name, i) => new QueueStats(name, priorities[i], depths[i].Ready, null))];
            dead = depths.Skip(names.Count).Sum(d => d.Ready);
        }
        else if (services.GetService<RedisWorkQueue>() is { } redisQueue)
        {
            queues = [];
            var names = WorkQueues.Chat.All;
            for (var i = 0; i < names.Count; i++)
            {
                var (waiting, inFlight) = await redisQueue.DepthAsync(names[i]);
                queues.Add(new QueueStats(names[i], priorities[i], waiting, inFlight));
            }
            dead = await redisQueue.DeadLetterCountAsync();
        }

        return TypedResults.Ok(new Stats(
            broker.Value.Kind.ToString().ToLowerInvariant(), queues, dead,
            await limiter.LevelsAsync(cancellationToken), await limiter.WaitingCountAsync(cancellationToken),
            await limiter.PausesAsync(cancellationToken)));
    }
}
