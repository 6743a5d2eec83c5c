using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;

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
        // Answered directly: liveness is the process answering, and the health-check service would run its one check
        // (always healthy) on another thread, a thread-pool wake-up that was most of the cost of a probe.
        app.Map("/health", AnswerLivenessAsync);
        app.Map("/health/live", AnswerLivenessAsync);
        // MassTransit registers its bus check with the "ready" tag too.
        app.MapHealthChecks("/health/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(HealthTags.Ready),
            ResponseWriter = HealthReportJson.WriteAsync,
        });
        app.MapHealthChecks("/health/full", new HealthCheckOptions { ResponseWriter = HealthReportJson.WriteAsync });
        return app;
    }

    static readonly HealthReport Live = new(
        new Dictionary<string, HealthReportEntry> { ["self"] = new(HealthStatus.Healthy, null, TimeSpan.Zero, null, null, [HealthTags.Live]) },
        TimeSpan.Zero);

    static Task AnswerLivenessAsync(HttpContext context)
    {
        // As the health-check middleware answers: never cached.
        context.Response.Headers.Pragma = "no-cache";
        context.Response.Headers.Expires = "Thu, 01 Jan 1970 00:00:00 GMT";
        return HealthReportJson.WriteLivenessAsync(context, Live);
    }
}
