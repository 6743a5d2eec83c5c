using System.Diagnostics;
using System.Globalization;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Benchmarks;

/// <summary>
/// `make bench`: one node of each engine against real clusters on loopback, side by side in one run (POST /chat rate
/// and p99, time to first token), and what sharded wake-ups cost each gateway when several share the streams.
/// Everything runs on one machine: a cluster here pays for replication without gaining the other machines' cores.
/// Writes TestResults/bench-clusters.md; asserts only that the work was done.
/// </summary>
[Explicit("a benchmark: run with make bench")]
[Category("Benchmark")]
public sealed class Clusters
{
    static double Percentile(IReadOnlyList<double> sorted, double p) => sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];

    static async Task Record(params string[] rows)
    {
        foreach (var row in rows)
            TestContext.Progress.WriteLine(row);
        await File.AppendAllLinesAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-clusters.md"), rows);
    }

    [Test]
    public async Task One_node_against_a_cluster()
    {
        await using var rabbitMqCluster = await RabbitMqCluster.StartAsync(nodes: 3);
        var rows = new List<string>
        {
            "| topology | POST /chat per s (32 clients) | POST /chat p50 / p99 ms | time to first token p50 / p99 ms |",
            "|---|---|---|---|",
        };
        rows.Add(await Measure("RabbitMQ 1 node, classic queues; Redis 1 node", settings: []));
        rows.Add(await Measure("RabbitMQ 3 nodes, quorum queues; Redis 1 node", settings: new() { ["RABBITMQ_QUEUE_TYPE"] = "quorum" }, rabbitMqCluster: rabbitMqCluster));
        rows.Add(await Measure("RabbitMQ 1 node, classic queues; Redis Cluster 3 masters", settings: [], redisMasters: 3));
        rows.Add(await Measure("RabbitMQ 1 node, classic queues; Redis Cluster 3 masters + 3 replicas, REDIS_WAIT_REPLICAS=1",
            settings: new() { ["REDIS_WAIT_REPLICAS"] = "1" }, redisMasters: 3, redisReplicas: 1));
        rows.Add(await Measure("RabbitMQ 3 nodes, quorum queues; Redis Cluster 3 masters", settings: new() { ["RABBITMQ_QUEUE_TYPE"] = "quorum" },
            rabbitMqCluster: rabbitMqCluster, redisMasters: 3));
        await Record([.. rows]);
    }

    static async Task<string> Measure(string topology, Dictionary<string, string> settings, RabbitMqCluster? rabbitMqCluster = null, int redisMasters = 0, int redisReplicas = 0)
    {
        const int Requests = 2000;
        const int Posters = 32;
        const int FirstTokenSamples = 100;
        settings["LLM_RPM"] = "0";
        settings["LLM_TPM"] = "0";
        settings["CHAT_CONCURRENCY"] = "64";
        await using var cluster = await Cluster.StartAsync("bench-topology", rabbitMqCluster: rabbitMqCluster, redisMasters: redisMasters, redisReplicas: redisReplicas, settings: settings);
        cluster.Provider.Behavior.Reply = _ => "first second third";
        using var http = cluster.Client();

        async Task<double> FirstToken()
        {
            var started = Stopwatch.GetTimestamp();
            var (_, sessionId) = await cluster.PostChatAsync(http, new { message = "hi" });
            using var response = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead);
            double? first = null;
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync()))
            {
                if (e.Event == "token")
                    first ??= Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (e.Event is "done" or "error" or "cancelled")
                    break;
            }
            return first ?? throw new InvalidOperationException("no token event");
        }

        // Warm-up: JIT, connections, queue declarations.
        for (var i = 0; i < 30; i++)
            await FirstToken();

        var latencies = new double[Requests];
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Posters).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
            {
                var sent = Stopwatch.GetTimestamp();
                await cluster.PostChatAsync(http, new { message = $"bench {i}" });
                latencies[i] = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            }
        }));
        var rate = Requests / clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        // The backlog the burst left is answered before time to first token is sampled on idle queues.
        Assert.That(await cluster.Provider.WaitUntilAsync(b => b.Requests.Count(r => r.Completed) >= Requests + 30, TimeSpan.FromMinutes(5)), Is.True, "every chat completed");

        var firstTokens = new List<double>();
        for (var i = 0; i < FirstTokenSamples; i++)
            firstTokens.Add(await FirstToken());
        firstTokens.Sort();
        return string.Create(CultureInfo.InvariantCulture,
            $"| {topology} | {rate:0} | {Percentile(latencies, 0.5):0.0} / {Percentile(latencies, 0.99):0.0} | {Percentile(firstTokens, 0.5):0.0} / {Percentile(firstTokens, 0.99):0.0} |");
    }

    /// <summary>
    /// 1, 2 and 4 gateways over one Redis; 48 chats of 300 tokens each, every one followed by a client of the gateway
    /// its number picks (round robin). Counted from each gateway's /metrics: the token events its wake-ups carried (a
    /// gateway now receives only the sessions its readers follow; before, every gateway received every token event),
    /// and the CPU all gateways spent together per token event delivered.
    /// </summary>
    [Test]
    public async Task Wake_ups_per_gateway()
    {
        const int Chats = 48;
        const int Tokens = 300;
        var rows = new List<string>
        {
            "| gateways | token events delivered | token events each gateway's wake-ups carried | gateways' CPU per 1,000 events delivered | events/s end to end |",
            "|---|---|---|---|---|",
        };
        foreach (var gateways in new[] { 1, 2, 4 })
        {
            await using var cluster = await Cluster.StartAsync($"bench-wake-{gateways}", workers: 1, settings: new Dictionary<string, string>
            {
                ["CHAT_CONCURRENCY"] = Chats.ToString(CultureInfo.InvariantCulture),
                ["LLM_RPM"] = "0",
                ["LLM_TPM"] = "0",
            });
            for (var g = 1; g < gateways; g++)
                await cluster.StartGatewayAsync();
            cluster.Provider.Behavior.Reply = _ => string.Join(' ', Enumerable.Range(0, Tokens).Select(i => $"t{i}"));
            var clients = Enumerable.Range(0, gateways).Select(cluster.Client).ToList();

            async Task<(int Delivered, TimeSpan Elapsed)> Round()
            {
                var delivered = 0;
                var clock = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, Chats).Select(async i =>
                {
                    var http = clients[i % gateways];
                    var (_, sessionId) = await cluster.PostChatAsync(clients[0], new { message = $"tokens {i}" });
                    using var response = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead);
                    await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync()))
                    {
                        if (e.Event == "token")
                            Interlocked.Increment(ref delivered);
                        if (e.Event is "done" or "error" or "cancelled")
                            break;
                    }
                }));
                return (delivered, clock.Elapsed);
            }

            await Round(); // warm-up
            var carriedBefore = await Task.WhenAll(clients.Select(WakeTokenEvents));
            var cpuBefore = cluster.Gateways.Select(g => ProcessStats.CpuTime(g.Pid)).ToList();
            var (delivered, elapsed) = await Round();
            var cpu = cluster.Gateways.Select((g, i) => ProcessStats.CpuTime(g.Pid) - cpuBefore[i]).Aggregate(TimeSpan.Zero, (a, b) => a + b);
            var carried = (await Task.WhenAll(clients.Select(WakeTokenEvents))).Select((c, i) => c - carriedBefore[i]).ToList();
            Assert.That(delivered, Is.EqualTo(Chats * Tokens), "every token event arrived");
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {gateways} | {delivered} | {string.Join(", ", carried.Select(c => c.ToString("0", CultureInfo.InvariantCulture)))} | " +
                $"{cpu.TotalSeconds * 1000 / delivered:0.000} CPU-s | {delivered / elapsed.TotalSeconds:0} |"));
            foreach (var client in clients)
                client.Dispose();
        }
        await Record([.. rows]);
    }

    static async Task<double> WakeTokenEvents(HttpClient http) =>
        PrometheusText.Sum(await http.GetStringAsync("/metrics"), "llmstream_wake_token_events_total");
}
