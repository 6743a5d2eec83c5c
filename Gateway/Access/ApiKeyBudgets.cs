using System.Globalization;
using System.Threading.RateLimiting;
using LlmStream.Providers.RateLimiting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.Gateway.Access;

/// <summary>API_KEY_RPM: each key's token bucket, holding ten seconds' worth of requests (at least one).</summary>
public interface IApiKeyBudget
{
    /// <summary>Takes one request from the key's bucket: null when it went through, else how long until one is there.</summary>
    ValueTask<TimeSpan?> TryTakeAsync(string keyName);
}

/// <summary>The single-process default: the buckets live in this gateway.</summary>
public sealed class InProcessApiKeyBudget(IOptions<ApiKeyOptions> options) : IApiKeyBudget
{
    readonly PartitionedRateLimiter<string>? _limiter = options.Value.CreateLimiter();

    public ValueTask<TimeSpan?> TryTakeAsync(string keyName)
    {
        if (_limiter is null)
            return ValueTask.FromResult<TimeSpan?>(null);
        using var lease = _limiter.AttemptAcquire(keyName);
        return ValueTask.FromResult<TimeSpan?>(lease.IsAcquired ? null
            : lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1));
    }
}

/// <summary>
/// With Redis, every gateway takes from the same bucket per key (atomic Lua, Redis's clock), so N gateways do not
/// give a key N times its budget. When Redis does not answer, the request goes through: the work it asks for
/// needs Redis anyway and will answer 503 on its own.
/// </summary>
public sealed class RedisApiKeyBudget(IConnectionMultiplexer redis, IOptions<ApiKeyOptions> options, ILogger<RedisApiKeyBudget> logger) : IApiKeyBudget
{
    // KEYS: the key's bucket. ARGV: capacity, refill per ms. Returns 0 when a request was taken, else the ms to wait.
    const string TakeScript = RedisRateLimiter.Clock + """
        local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
        local bucket = redis.call('HMGET', KEYS[1], 'level', 'at')
        local level = tonumber(bucket[1]) or capacity
        local at = tonumber(bucket[2]) or now
        level = math.min(capacity, level + math.max(0, now - at) * rate)
        local wait = 0
        if level >= 1 then level = level - 1 else wait = math.ceil((1 - level) / rate) end
        redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', now)
        redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
        return wait
        """;

    readonly RedisValue _capacity = Math.Max(1, options.Value.RequestsPerMinute / 6).ToString(CultureInfo.InvariantCulture);
    readonly RedisValue _perMillisecond = (options.Value.RequestsPerMinute / 60_000.0).ToString("R", CultureInfo.InvariantCulture);
    long _lastWarning;

    public async ValueTask<TimeSpan?> TryTakeAsync(string keyName)
    {
        try
        {
            var wait = (long)await redis.GetDatabase().ScriptEvaluateAsync(TakeScript, [(RedisKey)("llmstream:apikey-budget:" + keyName)], [_capacity, _perMillisecond]);
            return wait == 0 ? null : TimeSpan.FromMilliseconds(wait);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Once every ten seconds at most: while Redis is away every request comes here.
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _lastWarning);
            if (now - last > 10_000 && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
                logger.LogWarning("API key budgets not checked while Redis does not answer: {Reason}", e.Message);
            return null;
        }
    }
}
