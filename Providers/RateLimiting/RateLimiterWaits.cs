using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace LlmStream.Providers.RateLimiting;

public static class RateLimiterWaits
{
    /// <summary>
    /// Reserves <paramref name="tokens"/> for one call to <paramref name="model"/>, waiting as long as the limiter says
    /// (no polling) until the cluster-wide limits let it through. <paramref name="report"/> hears each wait's end time,
    /// and null once the waiting is over, so that a task's status can show it. A wait cancelled after the reservation
    /// was made gives the reservation back (a give-back that fails goes to <paramref name="logger"/>).
    /// </summary>
    public static async Task AcquireWaitingAsync(this IRateLimiter limiter, string model, int tokens,
        Func<DateTimeOffset?, Task>? report, CancellationToken cancellationToken, ILogger? logger = null)
    {
        var waited = false;
        var reserved = false;
        try
        {
            while (true)
            {
                var decision = await limiter.AcquireAsync(model, tokens, cancellationToken);
                reserved = decision.Reserved;
                if (decision.Wait > TimeSpan.Zero)
                {
                    waited = true;
                    if (report is not null)
                        await report(DateTimeOffset.UtcNow + decision.Wait);
                    await Task.Delay(decision.Wait, cancellationToken);
                }
                if (decision.Reserved)
                    return;
            }
        }
        catch (Exception) when (reserved)
        {
            // Cancelled (or the wait's report failed) after the reservation was made: no call will use it.
            await limiter.TryReleaseAsync(model, tokens, logger);
            throw;
        }
        finally
        {
            if (waited && report is not null)
                await report(null);
        }
    }

    /// <summary>Settles a call that stopped early to what it used, as well as it can (see <see cref="TryReleaseAsync"/>).</summary>
    public static async Task TrySettleAsync(this IRateLimiter limiter, string model, int reservedTokens, int usedTokens, ILogger? logger)
    {
        try
        {
            await limiter.SettleAsync(model, reservedTokens, usedTokens, CancellationToken.None);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger?.LogWarning("A rate-limit reservation of {Model} could not be settled: {Reason}", model, e.Message);
        }
    }

    /// <summary>
    /// Gives a reservation back as well as it can: a release that fails (Redis away) leaves the reservation to expire
    /// with the bucket's refill, and must not turn a cancelled or ended task into a failure.
    /// </summary>
    public static async Task TryReleaseAsync(this IRateLimiter limiter, string model, int tokens, ILogger? logger)
    {
        try
        {
            await limiter.ReleaseAsync(model, tokens, CancellationToken.None);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger?.LogWarning("A rate-limit reservation of {Model} could not be given back: {Reason}", model, e.Message);
        }
    }
}
