using System.Text.Json;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using LlmStream.ServiceDefaults.Tasks;

namespace LlmStream.ServiceDefaults.Operations;

/// <summary>Tags that choose which checks an endpoint runs.</summary>
public static class HealthTags
{
    /// <summary>The process answers: /health and /health/live.</summary>
    public const string Live = "live";

    /// <summary>The process can do its work (broker, Redis, provider): /health/ready.</summary>
    public const string Ready = "ready";
}

/// <summary>Redis answers a PING on the process's own connection (streams, task store, rate limiter, Redis broker).</summary>
public sealed class RedisHealthCheck(IConnectionMultiplexer redis) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var db = redis.GetDatabase();
            var latency = await db.PingAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            var answered = $"PING answered in {latency.TotalMilliseconds:0.###} ms";
            string memory;
            try
            {
                // Queued work, streams and task records live here: a memory limit with an evicting policy could drop
                // them. INFO from a script: the client library sends INFO itself only in admin mode, which the
                // services do not need.
                memory = (string?)await db.ScriptEvaluateAsync("return redis.call('INFO', 'memory')").WaitAsync(TimeSpan.FromSeconds(2), cancellationToken) ?? "";
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // An ACL without INFO (or a busy server) is no reason to take the service out of rotation.
                return HealthCheckResult.Healthy($"{answered}; memory policy not readable ({e.Message})");
            }
            return EvictionRisk(memory) is { } risk ? HealthCheckResult.Degraded($"{answered}; {risk}") : HealthCheckResult.Healthy(answered);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy($"Redis does not answer: {e.Message}");
        }
    }

    /// <summary>What is wrong with Redis's memory settings for LlmStream (from INFO memory), or null.</summary>
    public static string? EvictionRisk(string infoMemory)
    {
        string? Field(string name) => infoMemory.Split('\n').Select(line => line.Trim())
            .FirstOrDefault(line => line.StartsWith(name + ":", StringComparison.Ordinal))?[(name.Length + 1)..];
        var policy = Field("maxmemory_policy");
        var limited = long.TryParse(Field("maxmemory"), out var maxMemory) && maxMemory > 0;
        return limited && policy is not null && policy != "noeviction"
            ? $"maxmemory is set with maxmemory-policy {policy}: Redis may evict queued work, streams and task records; set maxmemory-policy noeviction"
            : null;
    }
}

/// <summary>Which model provider is configured (settings are validated at start, so it is always usable or simulated).</summary>
public sealed class ProviderHealthCheck(IOptions<ModelOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(HealthCheckResult.Healthy(options.Value.Describe(), new Dictionary<string, object>
        {
            ["provider"] = options.Value.Provider.ToString().ToLowerInvariant(),
            ["model"] = options.Value.LlmModel,
        }));
}

/// <summary>
/// Workers alive by their heartbeats: none for chat is unhealthy (accepted chats would wait forever), none for
/// embeddings is degraded (chat still works). Not part of readiness: a gateway keeps accepting work while
/// workers restart, which is what the queue is for.
/// </summary>
public sealed class WorkersHealthCheck(IWorkerRegistry registry, TimeProvider clock) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<WorkerBeat> alive;
        try
        {
            alive = await registry.AliveAsync(clock.GetUtcNow());
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            return HealthCheckResult.Unhealthy($"worker heartbeats cannot be read: {e.Message}");
        }

        int Slots(string work) => alive.SelectMany(w => w.Work).Where(l => l.Work == work).Sum(l => l.Concurrency);
        int Processes(string work) => alive.Count(w => w.Work.Any(l => l.Work == work));
        var (chat, embeddings) = (WorkQueues.Chat.Work, WorkQueues.Embeddings.Work);
        var data = new Dictionary<string, object>
        {
            ["chat_workers"] = Processes(chat),
            ["chat_slots"] = Slots(chat),
            ["embedding_workers"] = Processes(embeddings),
            ["embedding_slots"] = Slots(embeddings),
        };
        var summary = $"{Processes(chat)} chat and {Processes(embeddings)} embedding worker processes alive";
        if (Processes(chat) == 0)
            return HealthCheckResult.Unhealthy($"no chat worker has sent a heartbeat lately: {summary}", data: data);
        if (Processes(embeddings) == 0)
            return HealthCheckResult.Degraded($"no embedding worker has sent a heartbeat lately: {summary}", data: data);
        return HealthCheckResult.Healthy(summary, data);
    }
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
