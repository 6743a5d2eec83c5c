using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// While Redis (or RabbitMQ) is known to be down, POST /chat is refused at once with 503 and Retry-After, not after the
/// client library's timeout; the outage is logged once when it starts and once when it ends, with the refusals counted,
/// and no stack trace. The clients here wait 3 s at most: a refusal that waited out a 5 s (Redis) or 10 s (RabbitMQ)
/// timeout would fail them.
/// </summary>
public sealed class Refusing_fast_while_a_dependency_is_down
{
    static HttpClient Impatient(Cluster cluster) => new() { BaseAddress = cluster.GatewayUrl, Timeout = TimeSpan.FromSeconds(3) };

    [Test]
    public async Task Redis_down()
    {
        await using var cluster = await Cluster.StartAsync("fast-redis", workers: 0, redisAppendOnly: true);
        using var http = Impatient(cluster);
        var (before, _) = await cluster.PostChatAsync(http, new { message = "before" });

        var restart = cluster.Redis.RestartAsync(downtime: TimeSpan.FromSeconds(6));
        await Stopping_a_chat_worker.Until(() => cluster.Gateway!.Output.Contains("The task store (Redis) unavailable"), cluster);
        var refused = 0;
        var slowest = TimeSpan.Zero;
        for (var i = 0; i < 8; i++)
        {
            var clock = Stopwatch.StartNew();
            var response = await http.PostAsJsonAsync("/chat", new { message = $"during {i}" });
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), await response.Content.ReadAsStringAsync());
            Assert.That(response.Headers.RetryAfter, Is.Not.Null);
            refused++;
        }
        // A read Redis does not answer is a 503 that says so, not a 500 (after the Redis client's timeout: reads are
        // not refused in advance).
        using var patient = cluster.Client();
        var read = await patient.GetAsync($"/chat/{before}");
        Assert.That(read.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), await read.Content.ReadAsStringAsync());
        Assert.That(read.Headers.RetryAfter, Is.Not.Null);
        Assert.That(await read.Content.ReadAsStringAsync(), Does.Contain("Redis"));
        TestContext.Progress.WriteLine($"Redis down: {refused} refusals, the slowest in {slowest.TotalMilliseconds:0} ms");
        await restart;

        await AcceptedAgainAsync(http, cluster);
        var gateway = cluster.Gateway!;
        await Stopping_a_chat_worker.Until(() => gateway.Output.Contains("The task store (Redis) available again"), cluster);
        Assert.That(Lines(gateway, "The task store (Redis) unavailable"), Is.EqualTo(1), gateway.Output);
        Assert.That(gateway.Output, Does.Match($@"available again after [0-9.]+ s; (\d+) requests were refused"));
        Assert.That(RefusalsCounted(gateway.Output), Is.GreaterThanOrEqualTo(refused));
        Assert.That(gateway.StackTraceLines, Is.Empty, gateway.Output);
    }

    [Test]
    public async Task RabbitMQ_silent()
    {
        // The gateway reaches RabbitMQ through a proxy that holds RabbitMQ's replies: sends get no confirm.
        var rabbitMq = await SharedServices.RabbitMqAsync();
        await using var proxy = new TcpProxy(new Uri($"http://127.0.0.1:{rabbitMq.AmqpPort}"));
        await using var cluster = await Cluster.StartAsync("fast-rabbit", workers: 0, gateway: false);
        var vhost = new Uri(cluster.RabbitMqUrl).AbsolutePath;
        await cluster.StartGatewayAsync(new Dictionary<string, string> { ["RABBITMQ_URL"] = $"amqp://guest:guest@127.0.0.1:{proxy.Port}{vhost}" });
        using var patient = cluster.Client();
        using var http = Impatient(cluster);
        await cluster.PostChatAsync(patient, new { message = "before" });

        proxy.HoldReplies();
        var first = await patient.PostAsJsonAsync("/chat", new { message = "finds out" }); // waits out the 10 s send timeout
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        var refused = 0;
        for (var i = 0; i < 6; i++)
        {
            var response = await http.PostAsJsonAsync("/chat", new { message = $"during {i}" });
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), await response.Content.ReadAsStringAsync());
            Assert.That(response.Headers.RetryAfter, Is.Not.Null);
            refused++;
            await Task.Delay(300);
        }
        proxy.ReleaseReplies();

        await AcceptedAgainAsync(http, cluster);
        var gateway = cluster.Gateway!;
        await Stopping_a_chat_worker.Until(() => gateway.Output.Contains("The message broker available again"), cluster);
        Assert.That(Lines(gateway, "The message broker unavailable"), Is.EqualTo(1), gateway.Output);
        Assert.That(RefusalsCounted(gateway.Output), Is.GreaterThanOrEqualTo(1));
        Assert.That(gateway.StackTraceLines, Is.Empty, gateway.Output);
    }

    static async Task AcceptedAgainAsync(HttpClient http, Cluster cluster)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                var response = await http.PostAsJsonAsync("/chat", new { message = "after" });
                if (response.StatusCode == HttpStatusCode.Accepted)
                    return;
            }
            catch (TaskCanceledException)
            {
                // a trial that waited for the broker: it is coming back
            }
            catch (HttpRequestException e)
            {
                Assert.Fail($"the gateway stopped answering ({e.Message})\n{cluster.Logs()}");
            }
            if (DateTime.UtcNow > deadline)
                Assert.Fail("not accepting again within 60 s\n" + cluster.Logs());
            await Task.Delay(250);
        }
    }

    static int Lines(ServiceProcess process, string text) => process.Output.Split('\n').Count(l => l.Contains(text, StringComparison.Ordinal));

    static int RefusalsCounted(string output) =>
        int.Parse(System.Text.RegularExpressions.Regex.Match(output, @"available again after [0-9.]+ s; (\d+) requests were refused").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
}
