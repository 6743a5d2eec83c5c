using LlmStream.ServiceDefaults.Settings;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Operations;

public static class OperationsExtensions
{
    /// <summary>Heartbeats, outcome counters, the waiting ledger and the health checks every service shares; in Redis when REDIS_URL is set.</summary>
    public static IHostApplicationBuilder AddOperations(this IHostApplicationBuilder builder)
    {
        var broker = builder.Configuration.Settings<BrokerOptions>();
        builder.Services.AddSingleton<WorkerActivity>();
        builder.Services.AddSingleton<ClusterStats>();
        var checks = builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [HealthTags.Live])
            .AddCheck<ProviderHealthCheck>("provider", tags: [HealthTags.Ready]);

        if (broker.UsesRedisStore)
        {
            builder.Services.AddSingleton<IWorkerRegistry, RedisWorkerRegistry>();
            builder.Services.AddSingleton<RedisTaskCounters>();
            builder.Services.AddSingleton<ITaskCounters>(sp => sp.GetRequiredService<RedisTaskCounters>());
            builder.Services.AddSingleton<IWaitingLedger, RedisWaitingLedger>();
            checks.AddCheck<RedisHealthCheck>("redis", tags: [HealthTags.Ready]);
        }
        else
        {
            builder.Services.AddSingleton<IWorkerRegistry, InProcessWorkerRegistry>();
            builder.Services.AddSingleton<InProcessTaskCounters>();
            builder.Services.AddSingleton<ITaskCounters>(sp => sp.GetRequiredService<InProcessTaskCounters>());
            builder.Services.AddSingleton<IWaitingLedger, InProcessWaitingLedger>();
        }
        return builder;
    }

    /// <summary>For the gateway: /health/full also reports whether workers are alive, and /metrics the figures of /stats.</summary>
    public static IHostApplicationBuilder AddClusterView(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks().AddCheck<WorkersHealthCheck>("workers");
        builder.Services.AddHostedService<ClusterGauges>();
        return builder;
    }

    /// <summary>
    /// /health and /health/live: the process answers. /health/ready: it can take work (broker, Redis, provider).
    /// /health/full: every check, workers included. 200 when healthy or degraded, 503 when unhealthy; JSON details
    /// except for liveness.
    /// </summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        var live = new HealthCheckOptions { Predicate = check => check.Tags.Contains(HealthTags.Live) };
        app.MapHealthChecks("/health", live);
        app.MapHealthChecks("/health/live", live);
        // MassTransit registers its bus check with the "ready" tag too.
        app.MapHealthChecks("/health/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(HealthTags.Ready),
            ResponseWriter = HealthReportJson.WriteAsync,
        });
        app.MapHealthChecks("/health/full", new HealthCheckOptions { ResponseWriter = HealthReportJson.WriteAsync });
        return app;
    }
}
