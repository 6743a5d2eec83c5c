using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// One trace per request across processes: a client's traceparent on POST /chat reaches the provider's HTTP request
/// through the gateway, the broker and the chat worker; the worker's log lines for the task carry its ids.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Tracing_across_processes(string broker)
{
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        // The intake's line per request is Debug (a tenth of its CPU at Information); turned on as an operator would.
        _cluster = await Cluster.StartAsync("tracing", broker: broker,
            gatewaySettings: new Dictionary<string, string> { ["Serilog__MinimumLevel__Override__LlmStream.Gateway.Intake"] = "Debug" });
        await _cluster.StartEmbeddingWorkerAsync();
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [Test]
    public async Task The_provider_call_carries_the_clients_trace_id()
    {
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var clientSpanId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var message = $"trace me {traceId}";
        var (taskId, _) = await PostWithTraceParent(message, $"00-{traceId}-{clientSpanId}-01");
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), _cluster.Logs());

        var request = _cluster.Provider.Behavior.Requests.Single(r => r.Messages.Any(m => m.Content == message));
        Assert.That(request.Headers.TryGetValue("traceparent", out var traceParent), Is.True,
            $"headers: {string.Join(", ", request.Headers.Keys)}");
        var parts = traceParent!.Split('-');
        Assert.That(parts, Has.Length.EqualTo(4), traceParent);
        Assert.That(parts[1], Is.EqualTo(traceId), "the same trace as the client's request");
        Assert.That(parts[2], Is.Not.EqualTo(clientSpanId), "the provider call is a span of its own, under the worker's spans");
    }

    [Test]
    public async Task Without_a_client_trace_the_gateway_starts_one_that_reaches_the_provider()
    {
        var message = $"no client trace {Guid.NewGuid():N}";
        var (taskId, _) = await _cluster.PostChatAsync(_http, new { message });
        await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));

        var request = _cluster.Provider.Behavior.Requests.Single(r => r.Messages.Any(m => m.Content == message));
        Assert.That(request.Headers.GetValueOrDefault("traceparent"), Does.Match("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$"));
        var traceId = request.Headers["traceparent"].Split('-')[1];
        Assert.That(_cluster.Gateway!.Output, Does.Contain($"trace={traceId}"), "the gateway logged the intake in the same trace");
    }

    [Test]
    public async Task The_workers_lines_for_a_task_carry_its_task_session_and_trace_ids()
    {
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var (taskId, sessionId) = await PostWithTraceParent($"log me {traceId}", $"00-{traceId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
        await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));

        var worker = _cluster.Workers[0];
        // The last lines may still be on their way through the pipe.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!worker.Output.Contains($"Task {taskId} completed", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            await Task.Delay(50);

        var lines = worker.Output.Split('\n').Where(l => l.Contains(taskId, StringComparison.Ordinal)).ToList();
        Assert.That(lines, Has.Count.GreaterThanOrEqualTo(2), worker.Output);
        Assert.That(lines, Has.All.Contain($"trace={traceId}"), "each line names the request's trace");
        Assert.That(lines, Has.All.Contain($"\"SessionId\": \"{sessionId}\""), "the consume's log scope adds the session id to every line");

        var traced = worker.Output.Split('\n').Where(l => l.Contains($"trace={traceId}", StringComparison.Ordinal)).ToList();
        Assert.That(traced, Has.All.Contain(taskId), "every line logged in the task's trace names the task");

        var gatewayLines = _cluster.Gateway!.Output.Split('\n').Where(l => l.Contains($"trace={traceId}", StringComparison.Ordinal)).ToList();
        Assert.That(gatewayLines, Is.Not.Empty, _cluster.Gateway.Output);
        Assert.That(gatewayLines, Has.All.Contain(taskId), "the gateway's intake lines name the task");

        var startup = worker.Output.Split('\n').First(l => l.Contains("Chat worker on", StringComparison.Ordinal));
        Assert.That(startup, Does.Not.Contain("trace=").And.Not.Contain("span="), "a line written outside any span names none");
    }

    [Test]
    public async Task Each_embedding_chunk_request_carries_the_clients_trace_id()
    {
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var texts = Enumerable.Range(0, 5).Select(i => $"text {i} of {traceId}").ToArray();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/embeddings") { Content = JsonContent.Create(new { texts }) };
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
        using var response = await _http.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
        var taskId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString()!;

        var deadline = DateTime.UtcNow.AddSeconds(60);
        string status;
        while ((status = (await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}")).GetProperty("status").GetString()!) is "queued" or "running")
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), _cluster.Logs());
            await Task.Delay(50);
        }
        Assert.That(status, Is.EqualTo("completed"), _cluster.Logs());

        var behavior = _cluster.Provider.Behavior;
        var headers = behavior.EmbeddingInputs.Zip(behavior.EmbeddingHeaders)
            .Where(pair => pair.First.Any(t => t.EndsWith(traceId, StringComparison.Ordinal)))
            .Select(pair => pair.Second.GetValueOrDefault("traceparent") ?? "")
            .ToList();
        Assert.That(headers, Is.Not.Empty);
        Assert.That(headers, Has.All.StartWith($"00-{traceId}-"), "every chunk's provider request is in the client's trace");
    }

    async Task<(string TaskId, string SessionId)> PostWithTraceParent(string message, string traceParent)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = JsonContent.Create(new { message }) };
        request.Headers.Add("traceparent", traceParent);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
        using var accepted = JsonDocument.Parse(text);
        return (accepted.RootElement.GetProperty("task_id").GetString()!, accepted.RootElement.GetProperty("session_id").GetString()!);
    }
}
