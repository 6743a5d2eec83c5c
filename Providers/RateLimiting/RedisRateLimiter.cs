using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.Providers.RateLimiting;

/// <summary>Token buckets in Redis, taken and refilled atomically by Lua scripts, so every worker shares them.</summary>
public sealed class RedisRateLimiter(IConnectionMultiplexer redis, IOptions<RateLimitOptions> options, TimeProvider clock) : IRateLimiter
{
    // One hash tag for every bucket, pause and waiting entry: a call takes from the global and its model's buckets in one
    // script, which a Redis Cluster takes within one slot only.
    const string Prefix = "llmstream:{ratelimit}:";
    static readonly RedisKey Waiting = Prefix + "waiting";

    static RedisKey BucketKey(RateBucket bucket) => $"{Prefix}{bucket.Scope}:{bucket.Kind}";
    static RedisKey PauseKey(string scope) => $"{Prefix}pause:{scope}";
    static readonly RedisKey Pauses = Prefix + "pauses";

    /// <summary>Lua that sets <c>now</c> (ms) from Redis itself, so processes with skewed clocks share one timeline.</summary>
    public const string Clock = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """;

    // KEYS: the two pause keys, then one key per bucket. ARGV: capacity, rate per ms, cost per bucket.
    const string AcquireScript = Clock + """
        local wait = 0
        for i = 1, 2 do
          local paused = tonumber(redis.call('GET', KEYS[i]) or '0')
          if paused > now then wait = math.max(wait, paused - now) end
        end
        if wait > 0 then return {0, math.ceil(wait)} end
        for i = 3, #KEYS do
          local a = (i - 3) * 3 + 1
          local capacity, rate, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
          local bucket = redis.call('HMGET', KEYS[i], 'level', 'at')
          local level = tonumber(bucket[1]) or capacity
          local at = tonumber(bucket[2]) or now
          level = math.min(capacity, level + math.max(0, now - at) * rate) - cost
          if level < 0 then wait = math.max(wait, -level / rate) end
          redis.call('HSET', KEYS[i], 'level', tostring(level), 'at', now)
          redis.call('PEXPIRE', KEYS[i], 3600000)
        end
        return {1, math.ceil(wait)}
        """;

    // Settling and releasing both give an amount back to some buckets (negative: take more), capped at capacity.
    // KEYS: the buckets. ARGV: per bucket capacity, rate per ms, amount.
    const string GiveBackScript = Clock + """
        for i = 1, #KEYS do
          local a = (i - 1) * 3 + 1
          local capacity, rate, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
          local bucket = redis.call('HMGET', KEYS[i], 'level', 'at')
          local level = tonumber(bucket[1]) or capacity
          local at = tonumber(bucket[2]) or now
          level = math.min(capacity, level + math.max(0, now - at) * rate + amount)
          redis.call('HSET', KEYS[i], 'level', tostring(level), 'at', now)
          redis.call('PEXPIRE', KEYS[i], 3600000)
        end
        return 1
        """;

    // A pause only ever grows: two 429s do not shorten each other. ARGV: duration ms, model.
    const string PauseScript = Clock + """
        local until_ms = now + tonumber(ARGV[1])
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if until_ms > current then
          redis.call('SET', KEYS[1], until_ms, 'PX', ARGV[1])
          redis.call('HSET', KEYS[2], ARGV[2], until_ms)
        end
        return 1
        """;

    IDatabase Db => redis.GetDatabase();
    long Now => clock.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task<RateLimitDecision> AcquireAsync(string model, int tokens, CancellationToken cancellationToken)
    {
        var buckets = RateBucket.For(model, options.Value);
        var keys = new List<RedisKey> { PauseKey("global"), PauseKey("model:" + model) };
        var args = new List<RedisValue>();
        foreach (var bucket in buckets)
        {
            keys.Add(BucketKey(bucket));
            args.AddRange([Number(bucket.Capacity), Number(bucket.PerMillisecond), Number(bucket.Cost(tokens))]);
        }
        var result = (RedisResult[])(await Db.ScriptEvaluateAsync(AcquireScript, [.. keys], [.. args]))!;
        return new RateLimitDecision((long)result[0] == 1, TimeSpan.FromMilliseconds((long)result[1]));
    }

    public Task SettleAsync(string model, int reservedTokens, int usedTokens, CancellationToken cancellationToken) =>
        GiveBackAsync(RateBucket.For(model, options.Value).Where(b => b.Kind == "tokens"), _ => reservedTokens - usedTokens);

    public Task ReleaseAsync(string model, int reservedTokens, CancellationToken cancellationToken) =>
        GiveBackAsync(RateBucket.For(model, options.Value), bucket => bucket.Cost(reservedTokens));

    async Task GiveBackAsync(IEnumerable<RateBucket> buckets, Func<RateBucket, double> amount)
    {
        var keys = new List<RedisKey>();
        var args = new List<RedisValue>();
        foreach (var bucket in buckets)
        {
            if (amount(bucket) == 0)
                continue;
            keys.Add(BucketKey(bucket));
            args.AddRange([Number(bucket.Capacity), Number(bucket.PerMillisecond), Number(amount(bucket))]);
        }
        if (keys.Count > 0)
            await Db.ScriptEvaluateAsync(GiveBackScript, [.. keys], [.. args]);
    }

    public async Task PauseAsync(string model, TimeSpan duration, CancellationToken cancellationToken)
    {
        await Db.ScriptEvaluateAsync(PauseScript, [PauseKey("model:" + model), Pauses], [Math.Max(1, (long)duration.TotalMilliseconds), model]);
    }

    public async Task SetWaitingAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken)
    {
        if (until is { } u)
            await Db.SortedSetAddAsync(Waiting, taskId, u.ToUnixTimeMilliseconds());
        else
            await Db.SortedSetRemoveAsync(Waiting, taskId);
    }

    public async Task<int> WaitingCountAsync(CancellationToken cancellationToken)
    {
        // Entries of a worker that died while waiting fall out once their wait is over.
        await Db.SortedSetRemoveRangeByScoreAsync(Waiting, double.NegativeInfinity, Now - 60_000);
        return (int)await Db.SortedSetLengthAsync(Waiting);
    }

    public async Task<IReadOnlyList<RateLimitLevel>> LevelsAsync(CancellationToken cancellationToken)
    {
        var now = Now;
        var levels = new List<RateLimitLevel>();
        foreach (var bucket in RateBucket.All(options.Value))
        {
            var stored = await Db.HashGetAsync(BucketKey(bucket), ["level", "at"]);
            var level = stored[0].IsNull ? bucket.Capacity : double.Parse(stored[0].ToString(), CultureInfo.InvariantCulture);
            var at = stored[1].IsNull ? now : (long)stored[1];
            level = Math.Min(bucket.Capacity, level + Math.Max(0, now - at) * bucket.PerMillisecond);
            var paused = await Db.StringGetAsync(PauseKey(bucket.Scope));
            DateTimeOffset? pausedUntil = paused.IsNull || (long)paused <= now ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)paused);
            levels.Add(new RateLimitLevel(bucket.Scope, bucket.Kind, bucket.PerMinute, Math.Round(level, 2), Math.Round(bucket.Capacity, 2), pausedUntil));
        }
        return levels;
    }

    public async Task<IReadOnlyDictionary<string, DateTimeOffset>> PausesAsync(CancellationToken cancellationToken)
    {
        var now = Now;
        var pauses = new Dictionary<string, DateTimeOffset>();
        foreach (var entry in await Db.HashGetAllAsync(Pauses))
        {
            if ((long)entry.Value > now)
                pauses[entry.Name!] = DateTimeOffset.FromUnixTimeMilliseconds((long)entry.Value);
            else
                await Db.HashDeleteAsync(Pauses, entry.Name);
        }
        return pauses;
    }

    static RedisValue Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
