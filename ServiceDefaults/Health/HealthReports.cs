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

/// <summary>The health report as JSON: overall status and each check with its description and data.</summary>
public static class HealthReportJson
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            Status = report.Status.ToString(),
            DurationMs = Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            Checks = report.Entries.Select(e => new
            {
                Name = e.Key,
                Status = e.Value.Status.ToString(),
                e.Value.Description,
                DurationMs = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
                Data = e.Value.Data.Count == 0 ? null : e.Value.Data,
            }),
        }, Json));
    }
}
