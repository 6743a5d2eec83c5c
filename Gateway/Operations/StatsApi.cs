using Microsoft.AspNetCore.Http.HttpResults;

namespace LlmStream.Gateway.Operations;

/// <summary>GET /stats: what the cluster is doing now.</summary>
public static class StatsApi
{
    public static IEndpointRouteBuilder MapStatsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/stats", GetStats).WithTags("Operations")
            .WithSummary("Queues per priority (waiting, in flight, dead-lettered, oldest waiting age), workers alive, task counts and throughput, rate-limit levels");
        return app;
    }

    static async Task<Ok<ClusterSnapshot>> GetStats(ClusterStats stats, HttpContext context, CancellationToken cancellationToken)
    {
        context.Response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(await stats.ReadAsync(cancellationToken));
    }
}
