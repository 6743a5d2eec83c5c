using LlmStream.Providers.RateLimiting;
using Microsoft.Extensions.Options;

namespace LlmStream.Tests.Stores;

/// <summary>The same bucket rules for the cluster-wide limiter in Redis and the single-process one.</summary>
[TestFixture("redis")]
[TestFixture("redis-cluster")]
[TestFixture("in-process")]
public sealed class Rate_limiter_semantics(string kind) : RedisOrInProcess(kind)
{
    const string Model = "gpt-4o-mini";

    IRateLimiter _limiter = null!;

    [SetUp]
    public async Task CreateLimiter()
    {
        // One request and 60 tokens a minute with a burst of 100 s: the buckets hold 1.67 requests and 100 tokens
        // and refill slowly (a token a second), so what a test took is still missing seconds later.
        var options = Options.Create(new RateLimitOptions { RequestsPerMinute = 1, TokensPerMinute = 60, BurstSeconds = 100 });
        if (Connection is not null)
            await Connection.GetServer(Connection.GetEndPoints()[0]).FlushDatabaseAsync();
        _limiter = IsRedis
            ? new RedisRateLimiter(Connection!, options, TimeProvider.System)
            : new InProcessRateLimiter(options, TimeProvider.System);
    }

    async Task<(double Requests, double Tokens)> Levels()
    {
        var levels = await _limiter.LevelsAsync(default);
        return (levels.Single(l => l.Kind == "requests").Available, levels.Single(l => l.Kind == "tokens").Available);
    }

    [Test]
    public async Task A_released_reservation_gives_back_its_request_and_its_tokens()
    {
        var full = await Levels();
        var decision = await _limiter.AcquireAsync(Model, 40, default);
        Assert.That(decision.Reserved, Is.True);
        var taken = await Levels();
        Assert.That(taken.Requests, Is.EqualTo(full.Requests - 1).Within(0.1), "the request was taken");
        Assert.That(taken.Tokens, Is.EqualTo(full.Tokens - 40).Within(5), "the tokens were taken");

        await _limiter.ReleaseAsync(Model, 40, default);

        var given = await Levels();
        Assert.That(given.Requests, Is.EqualTo(full.Requests).Within(0.01), "the request is back");
        Assert.That(given.Tokens, Is.EqualTo(full.Tokens).Within(0.01), "the tokens are back, and no more than the bucket holds");
    }

    [Test]
    public async Task A_wait_cancelled_after_its_reservation_gives_the_reservation_back()
    {
        await _limiter.AcquireAsync(Model, 10, default); // 0.67 requests left: the next one waits 20 s
        var before = await Levels();
        using var cancel = new CancellationTokenSource();
        var waits = new List<DateTimeOffset?>();
        var waiting = _limiter.AcquireWaitingAsync(Model, 10, until =>
        {
            waits.Add(until);
            if (until is not null)
                cancel.Cancel(); // the task was cancelled while it waited its turn
            return Task.CompletedTask;
        }, cancel.Token);

        Assert.That(async () => await waiting, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(waits, Has.Count.EqualTo(2), "the wait was reported, then its end");
        Assert.That(waits[^1], Is.Null);
        var after = await Levels();
        Assert.That(after.Requests, Is.EqualTo(before.Requests).Within(0.1), "the cancelled request is no longer owed: the next caller does not wait for it");
        Assert.That(after.Tokens, Is.EqualTo(before.Tokens).Within(5), "nor its tokens");
    }

    [Test]
    public async Task Settling_gives_back_the_tokens_a_call_did_not_use_and_keeps_its_request()
    {
        var full = await Levels();
        await _limiter.AcquireAsync(Model, 50, default);
        await _limiter.SettleAsync(Model, 50, 20, default);

        var levels = await Levels();
        Assert.That(levels.Tokens, Is.EqualTo(full.Tokens - 20).Within(5), "50 reserved, 30 of them unused");
        Assert.That(levels.Requests, Is.EqualTo(full.Requests - 1).Within(0.1), "the call was made: its request stays taken");
    }
}
