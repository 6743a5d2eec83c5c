using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmStream.Providers;

namespace LlmStream.Tests.Gateway;

/// <summary>GET /metrics on the single-process gateway: Prometheus text whose counters follow what the product did.</summary>
public sealed class Serving_metrics
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public void Start()
    {
        // Slow enough that a stream stays open for a moment while the test scrapes; a request limit set, since the
        // simulated model has none by default, for the rate-limit gauge to report.
        _factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "40", ["LLM_RPM"] = "6000" });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    [Test]
    public async Task Serves_prometheus_text_with_runtime_and_http_instruments()
    {
        using var response = await _http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/plain"));
        Assert.That(text, Does.Contain("# TYPE "));
        Assert.That(text, Does.Contain("service_name=\"llmstream-gateway\""), "target_info names the service");
        Assert.That(text, Does.Match(@"(?m)^dotnet_gc_"), "runtime metrics");
        Assert.That(text, Does.Match(@"(?m)^http_server_request_duration_seconds_count\{"), "ASP.NET Core metrics");
    }

    [Test]
    public async Task Counters_move_with_an_accepted_and_completed_chat()
    {
        var before = await Scrape();
        var response = await _http.PostAsJsonAsync("/chat", new { message = "count me", priority = 7 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var taskId = accepted.GetProperty("task_id").GetString()!;
        await WaitForStatus(taskId, "completed");
        var after = await Scrape();

        Assert.That(Value(after, "llmstream_chats_accepted_total", "queue=\"high\"") - Value(before, "llmstream_chats_accepted_total", "queue=\"high\""),
            Is.EqualTo(1), after);
        Assert.That(Value(after, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"completed\"")
                    - Value(before, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"completed\""), Is.EqualTo(1), after);
        Assert.That(Value(after, "llmstream_tokens_generated_total", "model=\"gpt-4o-mini\"")
                    - Value(before, "llmstream_tokens_generated_total", "model=\"gpt-4o-mini\""),
            Is.EqualTo(SimulatedChatClient.Tokens("count me").Count), "completion tokens of the simulated answer");
        Assert.That(Value(after, "llmstream_provider_duration_seconds_count", "kind=\"chat\",model=\"gpt-4o-mini\",outcome=\"ok\"")
                    - Value(before, "llmstream_provider_duration_seconds_count", "kind=\"chat\",model=\"gpt-4o-mini\",outcome=\"ok\""), Is.EqualTo(1));
        Assert.That(Value(after, "llmstream_chat_time_to_first_token_seconds_count", "model=\"gpt-4o-mini\"")
                    - Value(before, "llmstream_chat_time_to_first_token_seconds_count", "model=\"gpt-4o-mini\""), Is.EqualTo(1));
    }

    [Test]
    public async Task A_cancelled_chat_is_counted_once_as_cancelled()
    {
        var before = await Scrape();
        var accepted = await (await _http.PostAsJsonAsync("/chat", new { message = "cancel me please, this takes a while" }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var taskId = accepted.GetProperty("task_id").GetString()!;
        Assert.That((await _http.DeleteAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await _http.DeleteAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "cancelling again");
        var after = await Scrape();

        Assert.That(Value(after, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"cancelled\"")
                    - Value(before, "llmstream_tasks_finished_total", "kind=\"chat\",outcome=\"cancelled\""), Is.EqualTo(1), after);
    }

    [Test]
    public async Task Open_streams_are_counted_while_a_client_reads_one()
    {
        var accepted = await (await _http.PostAsJsonAsync("/chat", new { message = "a stream to watch for a second or two" }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var sessionId = accepted.GetProperty("session_id").GetString()!;
        var taskId = accepted.GetProperty("task_id").GetString()!;
        var idle = Value(await Scrape(), "llmstream_sse_open_streams", "api=\"stream\"");

        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/stream/{sessionId}"))
        using (var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await using var body = await response.Content.ReadAsStreamAsync();
            Assert.That(await body.ReadAsync(new byte[16]), Is.GreaterThan(0), "the stream has started");
            Assert.That(Value(await Scrape(), "llmstream_sse_open_streams", "api=\"stream\""), Is.EqualTo(idle + 1));
        }

        await WaitForStatus(taskId, "completed");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        double open;
        while ((open = Value(await Scrape(), "llmstream_sse_open_streams", "api=\"stream\"")) != idle && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.That(open, Is.EqualTo(idle), "the stream is no longer counted once its client left");
    }

    [Test]
    public async Task Serves_the_cluster_figures_of_stats_as_gauges()
    {
        // Refreshed in the background every few seconds: wait for a snapshot taken after the first heartbeat.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string text;
        while (Value(text = await Scrape(), "llmstream_workers_alive", "work=\"chat\"") != 1)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the single process's chat worker appears in the gauges\n" + text);
            await Task.Delay(200);
        }
        Assert.That(Value(text, "llmstream_workers_slots", "work=\"chat\""), Is.EqualTo(100), "CHAT_CONCURRENCY's default");
        foreach (var queue in new[] { "high", "default", "low", "embeddings-high", "embeddings-default", "embeddings-low" })
            Assert.That(Regex.IsMatch(text, $@"(?m)^llmstream_queue_waiting\{{[^}}]*queue=""{queue}""[^}}]*\}} \d"), Is.True, $"waiting on {queue}\n{text}");
        Assert.That(Regex.IsMatch(text, @"(?m)^llmstream_rate_limit_available\{[^}]*kind=""requests""[^}]*\} \d"), Is.True, text);
    }

    async Task<string> Scrape()
    {
        using var response = await _http.GetAsync("/metrics");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        return await response.Content.ReadAsStringAsync();
    }

    async Task WaitForStatus(string taskId, string status)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string now;
        while ((now = (await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}")).GetProperty("status").GetString()!) != status)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"task {taskId} still {now}");
            await Task.Delay(50);
        }
    }

    /// <summary>The value of the series <paramref name="name"/> whose labels contain <paramref name="labels"/>; 0 when it is not there yet.</summary>
    static double Value(string scrape, string name, string labels)
    {
        var values = Regex.Matches(scrape, $@"(?m)^{Regex.Escape(name)}\{{([^}}]*)\}} (\S+)")
            .Where(m => m.Groups[1].Value.Contains(labels, StringComparison.Ordinal))
            .Select(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))
            .ToList();
        Assert.That(values, Has.Count.LessThanOrEqualTo(1), $"{name}{{{labels}}} names one series");
        return values.SingleOrDefault();
    }
}

/// <summary>With API_KEYS set, /metrics stays open like /health, for a scraper that has no key.</summary>
public sealed class Serving_metrics_with_api_keys
{
    [Test]
    public async Task Metrics_need_no_key_while_the_api_does()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["API_KEYS"] = "ops:ops-secret-key" });
        using var http = factory.CreateClient();

        Assert.That((await http.GetAsync("/stats")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        using var metrics = await http.GetAsync("/metrics");
        Assert.That(metrics.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await metrics.Content.ReadAsStringAsync(), Does.Contain("# TYPE "));
    }
}
