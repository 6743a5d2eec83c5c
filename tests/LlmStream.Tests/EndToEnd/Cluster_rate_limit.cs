using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.FakeOpenAI;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Three chat worker processes share one set of token buckets in Redis: the fake provider, which records when
/// each request arrived, never sees more than the configured requests and tokens per minute.
/// </summary>
public sealed class Cluster_rate_limit
{
    const double Rpm = 240;            // 4 requests/s, all models
    const double GlobalTpm = 60_000;   // high enough not to bind in the request scenario
    const double Tpm = 6000;           // 100 tokens/s for token-model
    const double Burst = 0.5;          // seconds of rate usable at once
    const double SlowModelRpm = 60;    // 1 request/s for one model
    static readonly TimeSpan Window = TimeSpan.FromSeconds(2);

    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("rate-limit", workers: 3, broker: "redis", settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "16",
            ["LLM_RPM"] = Rpm.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LLM_TPM"] = GlobalTpm.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LLM_MODEL_LIMITS"] = $"slow-model={SlowModelRpm}/0,token-model=0/{Tpm}",
            ["RATE_LIMIT_BURST_SECONDS"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Reserved before each call beside the counted prompt; the replies here are 50 tokens long at most.
            ["LLM_EXPECTED_COMPLETION_TOKENS"] = "50",
            ["RETRY_BASE_MS"] = "100",
        });
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [SetUp]
    public async Task LetTheBucketsRefill()
    {
        _cluster.Provider.Behavior.Reset();
        await Task.Delay(TimeSpan.FromSeconds(2)); // scenarios do not inherit each other's debt
    }

    [Test]
    public async Task Requests_per_minute_hold_across_workers_and_the_wait_is_visible()
    {
        var tasks = new List<string>();
        for (var i = 0; i < 24; i++)
            tasks.Add((await _cluster.PostChatAsync(_http, new { message = $"rpm {i}" })).TaskId);

        // The last ones wait for the limit, and say so.
        var sawWait = false;
        var sawStats = false;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!(sawWait && sawStats) && DateTime.UtcNow < deadline)
        {
            var status = await _http.GetFromJsonAsync<JsonElement>($"/chat/{tasks[^1]}");
            sawWait |= status.TryGetProperty("rate_limited_until", out var until) && until.ValueKind == JsonValueKind.String;
            var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
            sawStats |= stats.GetProperty("rate_limited_tasks").GetInt32() > 0;
            if (status.GetProperty("status").GetString() != "queued")
                break;
            await Task.Delay(50);
        }
        Assert.That(sawWait, Is.True, "GET /chat/{id} shows rate_limited_until while the task waits");
        Assert.That(sawStats, Is.True, "GET /stats counts the tasks waiting for the limit");

        foreach (var taskId in tasks)
            Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        var arrivals = _cluster.Provider.Behavior.Requests.Select(r => (r.ReceivedAt, 1.0)).ToList();
        var busiest = BusiestWindow(arrivals);
        var allowed = Rpm / 60 * Window.TotalSeconds + Rpm / 60 * Burst + 1; // rate × window + burst, ±1 for timing
        TestContext.Progress.WriteLine($"requests: busiest {Window.TotalSeconds} s window had {busiest}, allowed {allowed}");
        Assert.That(busiest, Is.LessThanOrEqualTo(allowed));
        Assert.That(_cluster.Workers.Count(w => w.Output.Contains("Generating task", StringComparison.Ordinal)), Is.GreaterThan(1), "several workers shared the work");
    }

    [Test]
    public async Task Tokens_per_minute_hold_across_workers_settled_to_the_reported_usage()
    {
        var reply = string.Join(' ', Enumerable.Range(0, 50).Select(i => $"t{i}"));
        _cluster.Provider.Behavior.Reply = _ => reply;
        var tasks = new List<string>();
        for (var i = 0; i < 12; i++)
            tasks.Add((await _cluster.PostChatAsync(_http, new { message = $"tpm {i}", model = "token-model" })).TaskId);
        foreach (var taskId in tasks)
            Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        var perRequest = FakeBehavior.CountWords("tpm 10") + FakeOpenAiServer.Tokenize(reply).Count; // the provider's reported usage
        var arrivals = _cluster.Provider.Behavior.Requests.Select(r => (r.ReceivedAt, (double)perRequest)).ToList();
        var busiest = BusiestWindow(arrivals);
        var allowed = Tpm / 60 * Window.TotalSeconds + Tpm / 60 * Burst + perRequest; // ± one request settled late
        TestContext.Progress.WriteLine($"tokens: busiest {Window.TotalSeconds} s window had {busiest}, allowed {allowed}");
        Assert.That(busiest, Is.LessThanOrEqualTo(allowed));
    }

    [Test]
    public async Task A_model_limit_holds_beside_the_global_one()
    {
        var tasks = new List<string>();
        for (var i = 0; i < 6; i++)
            tasks.Add((await _cluster.PostChatAsync(_http, new { message = $"slow {i}", model = "slow-model" })).TaskId);
        foreach (var taskId in tasks)
            Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));
        var busiest = BusiestWindow(_cluster.Provider.Behavior.Requests.Select(r => (r.ReceivedAt, 1.0)).ToList());
        Assert.That(busiest, Is.LessThanOrEqualTo(SlowModelRpm / 60 * Window.TotalSeconds + 1 + 1));
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        Assert.That(stats.GetProperty("rate_limits").EnumerateArray().Select(l => l.GetProperty("scope").GetString()), Does.Contain("model:slow-model"));
    }

    [Test]
    public async Task A_providers_429_pauses_every_worker_for_its_retry_after()
    {
        _cluster.Provider.Behavior.FailNext(429, retryAfter: TimeSpan.FromSeconds(2), message: "Rate limit reached");
        var first = await _cluster.PostChatAsync(_http, new { message = "first" });
        Assert.That(await _cluster.Provider.WaitUntilAsync(b => b.ChatRequests >= 1, TimeSpan.FromSeconds(30)), Is.True);
        // Calls already past the limiter when the 429 came cannot be recalled; what follows must wait.
        var paused = false;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!paused && DateTime.UtcNow < deadline)
        {
            var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
            paused = stats.GetProperty("provider_pauses").TryGetProperty("gpt-4o-mini", out _);
            await Task.Delay(20);
        }
        Assert.That(paused, Is.True, "GET /stats shows the provider's pause");
        var tasks = new List<string> { first.TaskId };
        for (var i = 0; i < 6; i++)
            tasks.Add((await _cluster.PostChatAsync(_http, new { message = $"after 429 {i}" })).TaskId);
        foreach (var taskId in tasks)
            Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        var requests = _cluster.Provider.Behavior.Requests;
        var rejectedAt = requests[0].ReceivedAt;
        var next = requests.Skip(1).Min(r => r.ReceivedAt);
        TestContext.Progress.WriteLine($"after the 429, the next request came {(next - rejectedAt).TotalMilliseconds:0} ms later");
        // The pause starts when the worker saw the 429, a little after the provider sent it.
        Assert.That(next - rejectedAt, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(2)));
    }

    /// <summary>The largest total of amounts that arrived within any one window.</summary>
    static double BusiestWindow(List<(DateTimeOffset At, double Amount)> arrivals)
    {
        var sorted = arrivals.OrderBy(a => a.At).ToList();
        double best = 0, sum = 0;
        var start = 0;
        for (var end = 0; end < sorted.Count; end++)
        {
            sum += sorted[end].Amount;
            while (sorted[end].At - sorted[start].At >= Window)
                sum -= sorted[start++].Amount;
            best = Math.Max(best, sum);
        }
        return best;
    }
}
