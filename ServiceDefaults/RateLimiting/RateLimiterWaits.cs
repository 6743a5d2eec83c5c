namespace LlmStream.ServiceDefaults.RateLimiting;

public static class RateLimiterWaits
{
    /// <summary>
    /// Reserves <paramref name="tokens"/> for one call to <paramref name="model"/>, waiting as long as the limiter says
    /// (no polling) until the cluster-wide limits let it through. <paramref name="report"/> hears each wait's end time,
    /// and null once the waiting is over, so that a task's status can show it. A wait cancelled after the reservation
    /// was made gives the reservation back.
    /// </summary>
    public static async Task AcquireWaitingAsync(this IRateLimiter limiter, string model, int tokens,
        Func<DateTimeOffset?, Task>? report, CancellationToken cancellationToken)
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
        catch (OperationCanceledException) when (reserved)
        {
            await limiter.ReleaseAsync(model, tokens, CancellationToken.None);
            throw;
        }
        finally
        {
            if (waited && report is not null)
                await report(null);
        }
    }
}
