using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// With OTEL_EXPORTER_OTLP_ENDPOINT set, the gateway and the worker (which serves no HTTP) send their spans and
/// metrics to the collector, each under its service name, and the spans of one request share its trace id.
/// </summary>
public sealed class Exporting_by_otlp
{
    OtlpReceiver _collector = null!;
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _collector = OtlpReceiver.Start();
        _cluster = await Cluster.StartAsync("otlp", workers: 0, settings: new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _collector.Endpoint.ToString(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
        });
        await _cluster.StartWorkerAsync(new Dictionary<string, string> { ["OTEL_SERVICE_NAME"] = "chat-worker-eu-1" });
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
        _collector.Dispose();
    }

    [Test]
    public async Task Spans_of_one_request_reach_the_collector_from_gateway_and_worker()
    {
        var traceId = RandomNumberGenerator.GetBytes(16);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = JsonContent.Create(new { message = "export me" }) };
        request.Headers.Add("traceparent", $"00-{Convert.ToHexStringLower(traceId)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
        using var response = await _http.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var taskId = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("task_id").GetString()!;
        await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));

        // OTLP protobuf carries the trace id as 16 raw bytes and names as UTF-8 strings.
        Assert.That(await _collector.WaitForAsync("/v1/traces", TimeSpan.FromSeconds(15), traceId, Utf8("llmstream-gateway")), Is.True,
            $"gateway spans of the trace; exports: {_collector.Received("/v1/traces").Count}\n{_cluster.Logs()}");
        Assert.That(await _collector.WaitForAsync("/v1/traces", TimeSpan.FromSeconds(15), traceId, Utf8("chat-worker-eu-1"), Utf8("chat.generate"),
            Utf8(taskId)), Is.True, "the worker's chat.generate span, under OTEL_SERVICE_NAME, tagged with the task id");
    }

    [Test]
    public async Task The_workers_metrics_reach_the_collector()
    {
        var (taskId, _) = await _cluster.PostChatAsync(_http, new { message = "count me out there" });
        await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));

        Assert.That(await _collector.WaitForAsync("/v1/metrics", TimeSpan.FromSeconds(15), Utf8("chat-worker-eu-1"), Utf8("llmstream.tasks.finished"),
            Utf8("llmstream.provider.duration")), Is.True, $"metric exports: {_collector.Received("/v1/metrics").Count}");
        Assert.That(await _collector.WaitForAsync("/v1/metrics", TimeSpan.FromSeconds(15), Utf8("llmstream-gateway"), Utf8("llmstream.chats.accepted")),
            Is.True, "the gateway exports by OTLP as well as serving /metrics");
    }

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
