using LlmStream.Tests.Infrastructure;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// A gateway with RabbitMQ and Redis but no worker, so whatever it enqueues stays visible: bad input gets a
/// problem naming the field, and leaves no message in any queue and no key in Redis.
/// </summary>
public sealed class Rejecting_bad_input
{
    Cluster _cluster = null!;
    HttpClient _http = null!;
    int _accepted; // requests this fixture had accepted: their messages stay queued, as no worker runs

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("bad-input", workers: 0, gatewaySettings: new Dictionary<string, string> { ["SSE_KEEPALIVE_SECONDS"] = "1" });
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    static IEnumerable<TestCaseData> BadBodies()
    {
        yield return new TestCaseData("""{"session_id":"s"}""", 400, "message").SetName("missing message");
        yield return new TestCaseData("""{"message":123}""", 400, "message").SetName("message of the wrong type");
        yield return new TestCaseData("""{"message":"hi","priority":"high"}""", 400, "priority").SetName("priority of the wrong type");
        yield return new TestCaseData("""{"message":"hi","priority":42}""", 400, "priority").SetName("priority out of range");
        yield return new TestCaseData("""{"message":"hi",""", 400, null).SetName("invalid JSON");
        yield return new TestCaseData("""["hi"]""", 400, null).SetName("not an object");
        yield return new TestCaseData("", 400, null).SetName("empty body");
        yield return new TestCaseData("""{"message":"hi","temperature":0.5}""", 400, "temperature").SetName("unknown field");
        yield return new TestCaseData("""{"message":"hi","stream":"yes"}""", 400, "stream").SetName("stream flag of the wrong type");
    }

    [TestCaseSource(nameof(BadBodies))]
    public async Task Gets_a_problem_naming_the_field_and_enqueues_nothing(string body, int status, string? field)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await _http.PostAsync("/chat", content);

        Assert.That((int)response.StatusCode, Is.EqualTo(status));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo(status));
        Assert.That(problem.GetProperty("detail").GetString(), Is.Not.Empty);
        if (field is not null)
            Assert.That(problem.GetProperty("errors").TryGetProperty(field, out _), Is.True, problem.ToString());

        await AssertNothingEnqueued();
    }

    [Test]
    public async Task A_body_over_one_megabyte_gets_413_and_enqueues_nothing()
    {
        var big = "{\"message\":\"" + new string('a', 1024 * 1024) + "\"}";
        using var content = new StringContent(big, Encoding.UTF8, "application/json");
        var response = await _http.PostAsync("/chat", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));

        // Without Content-Length (chunked), the limit still holds while reading.
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        var chunkedResponse = await _http.SendAsync(request);
        Assert.That(chunkedResponse.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));

        await AssertNothingEnqueued();
    }

    [Test]
    public async Task A_valid_request_is_enqueued_on_the_queue_its_priority_selects()
    {
        // The check above can fail: a good request leaves exactly one message and its records.
        var before = await RabbitMqServer.QueueDepthsAsync(_cluster.RabbitMqUrl, "high", "default", "low");
        var response = await _http.PostAsJsonAsync("/chat", new { message = "hi", priority = 8 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        _accepted++;
        var after = await RabbitMqServer.QueueDepthsAsync(_cluster.RabbitMqUrl, "high", "default", "low");
        Assert.That(after["high"], Is.EqualTo(before["high"] + 1));
        Assert.That(after["default"], Is.EqualTo(before["default"]));
        Assert.That(after["low"], Is.EqualTo(before["low"]));
        await AssertNothingEnqueued();

        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        var high = stats.GetProperty("queues").EnumerateArray().Single(q => q.GetProperty("name").GetString() == "high");
        Assert.That(high.GetProperty("waiting").GetInt64(), Is.EqualTo(after["high"]), "GET /stats reads RabbitMQ's queue depths");
        Assert.That(stats.GetProperty("dead_lettered").GetInt64(), Is.Zero);
    }

    [Test]
    public async Task A_stream_waiting_for_a_queued_task_sends_keep_alive_comments()
    {
        var response = await _http.PostAsJsonAsync("/chat", new { message = "nobody will answer: no worker runs" });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        _accepted++;
        var sessionId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("session_id").GetString();

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var stream = await _http.GetStreamAsync($"/stream/{sessionId}", cts.Token);
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            lines.Add(line);
            if (line == ": keep-alive")
                break;
        }
        Assert.That(lines, Does.Contain("event: queued"));
        Assert.That(lines, Does.Contain(": keep-alive"), "an idle stream says it is alive (SSE_KEEPALIVE_SECONDS=1)");
    }

    [Test]
    public async Task A_v1_stream_waiting_for_a_queued_task_sends_keep_alive_comments_after_its_role_chunk()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-4o-mini", stream = true, messages = new[] { new { role = "user", content = "nobody will answer here either" } } }),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        _accepted++;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        var lines = new List<string>();
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            lines.Add(line);
            if (line == ": keep-alive")
                break;
        }
        Assert.That(lines[0], Does.StartWith("data: ").And.Contain("\"role\":\"assistant\""), string.Join("\n", lines));
        Assert.That(lines, Does.Contain(": keep-alive"), "a waiting /v1 stream says it is alive, as OpenAI's SDKs allow (SSE_KEEPALIVE_SECONDS=1)");
    }

    Task AssertNothingEnqueued() => EnqueuedWork.AssertOnlyAcceptedAsync(_cluster, _accepted);
}
