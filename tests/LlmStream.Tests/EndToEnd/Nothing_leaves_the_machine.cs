using System.Globalization;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using LlmStream.FakeOpenAI;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Every service, run for longer than MassTransit's usage-telemetry delay (shortened through its options to its
/// shortest, 30 s), under strace: every connection it opens goes to the broker, Redis, the provider or the OTLP
/// collector it was given, and nowhere else (no DNS lookup, no other host). Beside it, the same services opted in to
/// MassTransit's telemetry show that the check sees a connection that leaves.
/// </summary>
public sealed partial class Nothing_leaves_the_machine
{
    static readonly TimeSpan ReportDelay = TimeSpan.FromSeconds(30);

    [Test]
    public async Task Every_connection_goes_to_a_configured_endpoint()
    {
        // Both at once: the wait for MassTransit's report is the long part.
        var (connections, optedIn) = (RunEveryServiceAsync(optIn: false), RunEveryServiceAsync(optIn: true));
        await Task.WhenAll(connections, optedIn);
        Assert.That(connections.Result.Outside, Is.Empty, "connections to what was not configured:\n" + string.Join('\n', connections.Result.Outside));
        Assert.That(connections.Result.Inside, Is.Not.Empty, "the services did connect to what they were given");
        Assert.That(optedIn.Result.Outside, Is.Not.Empty, "with MASSTRANSIT_USAGE_TELEMETRY=true MassTransit reports to its makers, and the check sees it");
    }

    sealed record Connections(IReadOnlyList<string> Inside, IReadOnlyList<string> Outside);

    static async Task<Connections> RunEveryServiceAsync(bool optIn)
    {
        var rabbitMq = await SharedServices.RabbitMqAsync();
        var vhostUrl = await rabbitMq.CreateVirtualHostAsync($"egress-{Guid.NewGuid():N}"[..15]);
        await using var redis = await RedisServer.StartAsync();
        await using var provider = await FakeOpenAiServer.StartAsync();
        using var collector = OtlpReceiver.Start();
        var port = FreePort.Next();
        var settings = new Dictionary<string, string>
        {
            ["BROKER"] = "rabbitmq",
            ["RABBITMQ_URL"] = vhostUrl,
            ["REDIS_URL"] = redis.Url,
            ["OPENAI_BASE_URL"] = provider.BaseUrl.ToString(),
            ["OPENAI_API_KEY"] = "test-key",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Endpoint.ToString(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["MassTransit__UsageTelemetry__ReportDelay"] = ReportDelay.ToString("c", CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
        };
        if (optIn)
            settings["MASSTRANSIT_USAGE_TELEMETRY"] = "true";
        var allowed = new HashSet<int> { rabbitMq.AmqpPort, redis.Port, provider.BaseUrl.Port, collector.Endpoint.Port };

        var folder = Directory.CreateTempSubdirectory("llmstream-strace-").FullName;
        var traced = new List<(ServiceProcess Strace, string Log)>();
        try
        {
            foreach (var (name, dll, ready) in new[]
                     {
                         ("gateway", RepoPaths.Gateway, "LlmStream gateway ready"),
                         ("chat-worker", RepoPaths.ChatWorker, "Chat worker on"),
                         ("embedding-worker", RepoPaths.EmbeddingWorker, "Embedding worker on"),
                     })
            {
                var log = Path.Combine(folder, name + ".strace");
                var strace = ServiceProcess.Start(name, "strace", ["-f", "-qq", "-e", "trace=connect", "-e", "signal=none", "-o", log, "dotnet", dll], settings);
                traced.Add((strace, log));
                await strace.WaitForOutputAsync(ready, TimeSpan.FromSeconds(90));
            }

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
            var chat = await http.PostAsJsonAsync("/chat", new { message = "stay on this machine" });
            Assert.That((int)chat.StatusCode, Is.EqualTo(202), await chat.Content.ReadAsStringAsync());
            var embeddings = await http.PostAsJsonAsync("/v1/embeddings", new { input = "stay here too" });
            Assert.That((int)embeddings.StatusCode, Is.EqualTo(200), await embeddings.Content.ReadAsStringAsync());
            await Task.Delay(ReportDelay + TimeSpan.FromSeconds(8)); // past MassTransit's report, counted from the bus start

            foreach (var (strace, _) in traced)
                await StopTracedAsync(strace);
            var inside = new List<string>();
            var outside = new List<string>();
            foreach (var (strace, log) in traced)
            {
                foreach (var line in File.ReadLines(log))
                {
                    if (Inet().Match(line) is not { Success: true } match)
                        continue;
                    var address = match.Groups["address"].Value;
                    var to = $"{strace.Name}: {address} port {match.Groups["port"].Value}";
                    var loopback = address is "127.0.0.1" or "::1" or "::ffff:127.0.0.1";
                    (loopback && allowed.Contains(int.Parse(match.Groups["port"].Value, CultureInfo.InvariantCulture)) ? inside : outside).Add(to);
                }
            }
            return new Connections([.. inside.Distinct()], [.. outside.Distinct()]);
        }
        finally
        {
            foreach (var (strace, _) in traced)
                await strace.DisposeAsync();
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>SIGTERM to the traced service itself (strace alone would detach and leave it running); strace ends with it.</summary>
    static async Task StopTracedAsync(ServiceProcess strace)
    {
        var children = File.ReadAllText($"/proc/{strace.Pid}/task/{strace.Pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        foreach (var child in children)
        {
            using var term = System.Diagnostics.Process.Start("kill", ["-TERM", child]);
            await term.WaitForExitAsync();
        }
        await strace.WaitForExitAsync(TimeSpan.FromSeconds(60));
    }

    // connect(5, {sa_family=AF_INET, sin_port=htons(5672), sin_addr=inet_addr("127.0.0.1")}, 16)
    // connect(5, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), ...
    [GeneratedRegex(@"connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((?<port>\d+)\).*?(?:inet_addr\(""|inet_pton\(AF_INET6?, "")(?<address>[^""]+)")]
    private static partial Regex Inet();
}
