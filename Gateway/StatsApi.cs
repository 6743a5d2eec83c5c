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

    public sealed record QueueStats(string Name, string Priority, long Waiting, long InFlight);

    public sealed record Stats(
        string Broker, IReadOnlyList<QueueStats>? Queues, long? DeadLettered,
        IReadOnlyList<RateLimitLevel> RateLimits, int RateLimitedTasks, IReadOnlyDictionary<string, DateTimeOffset> ProviderPauses);

    static async Task<Ok<Stats>> GetStats(IRateLimiter limiter, IServiceProvider services, Microsoft.Extensions.Options.IOptions<ServiceDefaults.Settings.BrokerOptions> broker, CancellationToken cancellationToken)
    {
        List<QueueStats>? queues = null;
        long? dead = null;
        // Redis streams know their depth exactly; RabbitMQ's per-queue figures come with the operations work.
        if (services.GetService<RedisWorkQueue>() is { } redisQueue)
        {
            queues = [];
            var names = WorkQueues.Chat.All;
            string[] priorities = ["high", "default", "low"];
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
