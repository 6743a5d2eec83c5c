using System.Globalization;
using System.Text.RegularExpressions;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// The worker's own counters, scraped from /metrics of a single-process gateway (BROKER=inmemory runs the chat worker
/// inside it) calling the fake provider: retries by reason, failures, provider calls by outcome.
/// </summary>
public sealed class Counting_provider_failures
{
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("failures", broker: "inmemory", settings: new Dictionary<string, string> { ["RETRY_BASE_MS"] = "50" });
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [Test]
    public async Task A_transient_failure_counts_one_retry_and_the_task_still_completes()
    {
        var before = await _http.GetStringAsync("/metrics");
        _cluster.Provider.Behavior.FailNext(503);
        var (taskId, _) = await _cluster.PostChatAsync(_http, new { message = "retry me once" });
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), _cluster.Logs());
        var after = await _http.GetStringAsync("/metrics");

        Assert.That(Delta(before, after, "llmstream_retries_total", "kind=\"chat\",reason=\"transient\""), Is.EqualTo(1), after);
        Assert.That(Delta(before, after, "llmstream_provider_duration_seconds_count", "kind=\"chat\",model=\"gpt-4o-mini\",outcome=\"error\""), Is.EqualTo(1));
        Assert.That(Delta(before, after, "llmstream_provider_duration_seconds_count", "kind=\"chat\",model=\"gpt-4o-mini\",outcome=\"ok\""), Is.EqualTo(1));
        Assert.That(Delta(before, after, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"completed\""), Is.EqualTo(1));
    }

    [Test]
    public async Task A_refused_request_counts_one_failed_task_and_no_retry()
    {
        var before = await _http.GetStringAsync("/metrics");
        _cluster.Provider.Behavior.FailNext(400, message: "unsupported parameter");
        var (taskId, _) = await _cluster.PostChatAsync(_http, new { message = "fail me" });
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"), _cluster.Logs());
        var after = await _http.GetStringAsync("/metrics");

        Assert.That(Delta(before, after, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"failed\""), Is.EqualTo(1), after);
        Assert.That(Delta(before, after, "llmstream_retries_total", "kind=\"chat\""), Is.Zero);
    }

    static double Delta(string before, string after, string name, string labels) => Sum(after, name, labels) - Sum(before, name, labels);

    /// <summary>The sum over the series of <paramref name="name"/> whose labels contain <paramref name="labels"/> (0 when none yet).</summary>
    static double Sum(string scrape, string name, string labels) =>
        Regex.Matches(scrape, $@"(?m)^{Regex.Escape(name)}\{{([^}}]*)\}} (\S+)")
            .Where(m => m.Groups[1].Value.Contains(labels, StringComparison.Ordinal))
            .Sum(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
}
