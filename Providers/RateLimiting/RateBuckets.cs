namespace LlmStream.Providers.RateLimiting;

/// <summary>
/// One token bucket: it holds up to <see cref="Capacity"/> (the burst) and refills at the configured rate.
/// A grant may take the level below zero (a big request), which delays the next ones: the average holds.
/// </summary>
public sealed record RateBucket(string Scope, string Kind, double PerMinute, double Capacity)
{
    public double PerMillisecond => PerMinute / 60_000.0;

    /// <summary>The buckets that apply to a call of <paramref name="model"/>: global and per model, requests and tokens.</summary>
    public static IReadOnlyList<RateBucket> For(string model, RateLimitOptions options)
    {
        var buckets = new List<RateBucket>(4);
        Add(buckets, "global", options.RequestsPerMinute, options.TokensPerMinute, options.BurstSeconds);
        if (options.ParsedModelLimits().TryGetValue(model, out var limits))
            Add(buckets, "model:" + model, limits.Rpm, limits.Tpm, options.BurstSeconds);
        return buckets;
    }

    /// <summary>Every bucket configured, for reporting.</summary>
    public static IReadOnlyList<RateBucket> All(RateLimitOptions options)
    {
        var buckets = new List<RateBucket>();
        Add(buckets, "global", options.RequestsPerMinute, options.TokensPerMinute, options.BurstSeconds);
        foreach (var (model, limits) in options.ParsedModelLimits())
            Add(buckets, "model:" + model, limits.Rpm, limits.Tpm, options.BurstSeconds);
        return buckets;
    }

    static void Add(List<RateBucket> buckets, string scope, int rpm, int tpm, double burstSeconds)
    {
        // At least one request (or token) fits, whatever the burst.
        if (rpm > 0) buckets.Add(new RateBucket(scope, "requests", rpm, Math.Max(1, rpm / 60.0 * burstSeconds)));
        if (tpm > 0) buckets.Add(new RateBucket(scope, "tokens", tpm, Math.Max(1, tpm / 60.0 * burstSeconds)));
    }

    public double Cost(int tokens) => Kind == "requests" ? 1 : tokens;
}

public readonly record struct RateLimitDecision(bool Reserved, TimeSpan Wait);

public sealed record RateLimitLevel(string Scope, string Kind, double LimitPerMinute, double Available, double Capacity, DateTimeOffset? PausedUntil);

/// <summary>The provider's limits, held for the whole cluster.</summary>
public interface IRateLimiter
{
    /// <summary>
    /// Reserves one request and <paramref name="tokens"/> tokens in every bucket of the model (GCRA-style: the
    /// buckets may go into debt, which makes later callers wait longer, first come first served). Reserved: go
    /// after <see cref="RateLimitDecision.Wait"/>. Not reserved (the provider paused the model): ask again after it.
    /// </summary>
    Task<RateLimitDecision> AcquireAsync(string model, int tokens, CancellationToken cancellationToken);

    /// <summary>Corrects the token buckets once the provider reported the real usage.</summary>
    Task SettleAsync(string model, int reservedTokens, int usedTokens, CancellationToken cancellationToken);

    /// <summary>
    /// Gives back a reservation that no call used (the task had ended, or its wait was cancelled): its request and
    /// its tokens return to every bucket they were taken from, so later callers wait no longer for it.
    /// </summary>
    Task ReleaseAsync(string model, int reservedTokens, CancellationToken cancellationToken);

    /// <summary>The provider said 429: nobody in the cluster calls this model before <paramref name="duration"/> has passed.</summary>
    Task PauseAsync(string model, TimeSpan duration, CancellationToken cancellationToken);

    /// <summary>Records that a task waits for the limit until <paramref name="until"/> (null: no longer).</summary>
    Task SetWaitingAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken);

    Task<int> WaitingCountAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<RateLimitLevel>> LevelsAsync(CancellationToken cancellationToken);

    /// <summary>Models the provider paused with a 429, and until when.</summary>
    Task<IReadOnlyDictionary<string, DateTimeOffset>> PausesAsync(CancellationToken cancellationToken);
}
