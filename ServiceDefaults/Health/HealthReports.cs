using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace LlmStream.ServiceDefaults.Health;

/// <summary>Tags that choose which checks an endpoint runs.</summary>
public static class HealthTags
{
    /// <summary>The process answers: /health and /health/live.</summary>
    public const string Live = "live";

    /// <summary>The process can do its work (broker, Redis, provider): /health/ready.</summary>
    public const string Ready = "ready";
}

/// <summary>
/// The health report as JSON: the overall result and each check with its description and data, beside the fields the
/// Python original's clients read (its /health/full: <c>status</c> ok or degraded, <c>redis</c>, <c>celery_workers</c>,
/// <c>openai</c>). <c>status</c> speaks the original's words (ok, degraded, unhealthy); <c>health</c> is .NET's.
/// </summary>
public static class HealthReportJson
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        var body = new Dictionary<string, object?>
        {
            ["status"] = OriginalStatus(report.Status),
            ["health"] = report.Status.ToString(),
            ["duration_ms"] = Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            ["checks"] = report.Entries.Select(e => new
            {
                Name = e.Key,
                Status = e.Value.Status.ToString(),
                e.Value.Description,
                DurationMs = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
                Data = e.Value.Data.Count == 0 ? null : e.Value.Data,
            }),
        };
        if (report.Entries.TryGetValue("redis", out var redis))
            body["redis"] = redis.Status == HealthStatus.Unhealthy ? "disconnected" : "connected";
        else
            body["redis"] = "not used (single process)";
        if (report.Entries.TryGetValue("workers", out var workers))
            body["celery_workers"] = workers.Data.TryGetValue("chat_workers", out var count) && Convert.ToInt32(count, System.Globalization.CultureInfo.InvariantCulture) > 0 ? "active" : "no_workers";
        if (report.Entries.TryGetValue("provider", out var provider))
            body["openai"] = provider.Data.TryGetValue("provider", out var kind) && kind as string != "simulated" ? "configured" : "missing";
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, Json));
    }

    /// <summary>
    /// GET /health (liveness): JSON with the original's <c>status</c> ok and <c>backend</c>, or the plain text
    /// Healthy for a client that asks for text/plain only (a probe that reads the body).
    /// </summary>
    public static Task WriteLivenessAsync(HttpContext context, HealthReport report)
    {
        context.Response.Headers.CacheControl = "no-store";
        var accept = context.Request.Headers.Accept.ToString();
        if (accept.Contains("text/plain", StringComparison.OrdinalIgnoreCase) && !accept.Contains("json", StringComparison.OrdinalIgnoreCase) && !accept.Contains("*/*", StringComparison.Ordinal))
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync(report.Status.ToString());
        }
        context.Response.ContentType = "application/json; charset=utf-8";
        var deployment = context.RequestServices.GetService(typeof(Settings.Deployment)) as Settings.Deployment;
        return context.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["status"] = OriginalStatus(report.Status),
            ["health"] = report.Status.ToString(),
            ["backend"] = deployment is null ? null : Backend(deployment),
        }, Json));
    }

    static string Backend(Settings.Deployment deployment) => deployment.Broker switch
    {
        Settings.BrokerKind.RabbitMq => "rabbitmq+redis",
        Settings.BrokerKind.Redis => "redis",
        _ => deployment.UsesRedis ? "inmemory+redis" : "inmemory",
    };

    static string OriginalStatus(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "ok",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };
}
