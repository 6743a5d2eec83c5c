using Microsoft.Extensions.Options;

namespace LlmStream.Providers.RateLimiting;

/// <summary>The same buckets as <see cref="RedisRateLimiter"/> for the single-process default, where this process is the cluster.</summary>
public sealed class InProcessRateLimiter(IOptions<RateLimitOptions> options, TimeProvider clock) : IRateLimiter
{
    readonly Lock _lock = new();
    readonly Dictionary<string, (double Level, long At)> _buckets = [];
    readonly Dictionary<string, long> _pausedUntil = [];
    readonly Dictionary<string, long> _waiting = [];

    long Now => clock.GetUtcNow().ToUnixTimeMilliseconds();

    public Task<RateLimitDecision> AcquireAsync(string model, int tokens, CancellationToken cancellationToken)
    {
        var buckets = RateBucket.For(model, options.Value);
        lock (_lock)
        {
            var now = Now;
            double wait = 0;
            foreach (var scope in new[] { "global", "model:" + model })
            {
                if (_pausedUntil.TryGetValue(scope, out var until) && until > now)
                    wait = Math.Max(wait, until - now);
            }
            if (wait > 0)
                return Task.FromResult(new RateLimitDecision(false, TimeSpan.FromMilliseconds(Math.Ceiling(wait))));

            foreach (var bucket in buckets)
            {
                var level = Refill(bucket, now) - bucket.Cost(tokens);
                if (level < 0)
                    wait = Math.Max(wait, -level / bucket.PerMillisecond);
                _buckets[Key(bucket)] = (level, now);
            }
            return Task.FromResult(new RateLimitDecision(true, TimeSpan.FromMilliseconds(Math.Ceiling(wait))));
        }
    }

    public Task SettleAsync(string model, int reservedTokens, int usedTokens, CancellationToken cancellationToken) =>
        GiveBack(RateBucket.For(model, options.Value).Where(b => b.Kind == "tokens"), _ => reservedTokens - usedTokens);

    public Task ReleaseAsync(string model, int reservedTokens, CancellationToken cancellationToken) =>
        GiveBack(RateBucket.For(model, options.Value), bucket => bucket.Cost(reservedTokens));

    Task GiveBack(IEnumerable<RateBucket> buckets, Func<RateBucket, double> amount)
    {
        lock (_lock)
        {
            var now = Now;
            foreach (var bucket in buckets)
                _buckets[Key(bucket)] = (Math.Min(bucket.Capacity, Refill(bucket, now) + amount(bucket)), now);
        }
        return Task.CompletedTask;
    }

    public Task PauseAsync(string model, TimeSpan duration, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var until = Now + (long)duration.TotalMilliseconds;
            var scope = "model:" + model;
            if (!_pausedUntil.TryGetValue(scope, out var current) || until > current)
                _pausedUntil[scope] = until;
        }
        return Task.CompletedTask;
    }

    public Task SetWaitingAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (until is { } u) _waiting[taskId] = u.ToUnixTimeMilliseconds();
            else _waiting.Remove(taskId);
        }
        return Task.CompletedTask;
    }

    public Task<int> WaitingCountAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
            return Task.FromResult(_waiting.Count);
    }

    public Task<IReadOnlyList<RateLimitLevel>> LevelsAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var now = Now;
            IReadOnlyList<RateLimitLevel> levels = [.. RateBucket.All(options.Value).Select(b => new RateLimitLevel(
                b.Scope, b.Kind, b.PerMinute, Math.Round(Refill(b, now), 2), Math.Round(b.Capacity, 2),
                _pausedUntil.TryGetValue(b.Scope, out var until) && until > now ? DateTimeOffset.FromUnixTimeMilliseconds(until) : null))];
            return Task.FromResult(levels);
        }
    }

    public Task<IReadOnlyDictionary<string, DateTimeOffset>> PausesAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var now = Now;
            IReadOnlyDictionary<string, DateTimeOffset> pauses = _pausedUntil
                .Where(p => p.Value > now && p.Key.StartsWith("model:", StringComparison.Ordinal))
                .ToDictionary(p => p.Key["model:".Length..], p => DateTimeOffset.FromUnixTimeMilliseconds(p.Value));
            return Task.FromResult(pauses);
        }
    }

    static string Key(RateBucket bucket) => bucket.Scope + ":" + bucket.Kind;

    double Refill(RateBucket bucket, long now) =>
        _buckets.TryGetValue(Key(bucket), out var stored)
            ? Math.Min(bucket.Capacity, stored.Level + Math.Max(0, now - stored.At) * bucket.PerMillisecond)
            : bucket.Capacity;
}
