using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Redis;

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
            if (RedisTopology.IsCluster(redis) && RedisTopology.UnservedSlots(redis) is { } unserved)
                return HealthCheckResult.Unhealthy($"{answered}; Redis Cluster: {unserved}");
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
