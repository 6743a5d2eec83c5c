using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;

namespace LlmStream.ServiceDefaults.Health;

public static class HealthEndpoints
{
    /// <summary>
    /// /health and /health/live: the process answers. /health/ready: it can take work (broker, Redis, provider).
    /// /health/full: every check, workers included. 200 when healthy or degraded, 503 when unhealthy; JSON details
    /// except for liveness.
    /// </summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        // JSON as the Python original answered it (status ok, backend), or text for a client asking for text/plain only.
        var live = new HealthCheckOptions { Predicate = check => check.Tags.Contains(HealthTags.Live), ResponseWriter = HealthReportJson.WriteLivenessAsync };
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
