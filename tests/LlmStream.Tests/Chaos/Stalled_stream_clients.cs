using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// Clients that open a stream of a long answer and never read it (a tiny socket receive buffer), beside clients that
/// read normally: the normal ones finish about as fast as without the stalled ones (compared with a baseline run in
/// the same test), and the gateway takes in (reads from Redis) only what a stalled client's socket took plus one batch,
/// not the rest of the stream it did not read.
/// </summary>
public sealed class Stalled_stream_clients
{
    const int StalledClients = 20;
    const int LongSessions = 2;
    const int LongTokens = 8000;
    const int TokenBytes = 2000;

    [Test]
    public async Task Do_not_slow_the_others_or_grow_the_gateways_memory_without_bound()
    {
        await using var cluster = await Cluster.StartAsync("chaos-stalled", workers: 1, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "16",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        var gatewayPid = cluster.Gateways[0].Pid;
        var padding = new string('x', TokenBytes);
        cluster.Provider.Behavior.Reply = message => message.StartsWith("long", StringComparison.Ordinal)
            ? string.Join(' ', Enumerable.Range(1, LongTokens).Select(i => $"{i}{padding}"))
            : string.Join(' ', Enumerable.Range(1, 40).Select(i => $"{message}:{i}"));

        // Warm up, then the baseline: normal clients alone.
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(10);
        await NormalClients(cluster, http, "warm-up");
        var baseline = await NormalClients(cluster, http, "baseline");
        var memoryBefore = ProcessStats.ResidentBytes(gatewayPid);
        var heapBefore = await HeapAfterLastCollection(http);

        // Long answers, finished and waiting in Redis: megabytes per stream.
        cluster.Provider.Behavior.TokenDelay = TimeSpan.Zero;
        var longSessions = new List<string>();
        for (var i = 0; i < LongSessions; i++)
        {
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message = $"long {i}" });
            await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
            longSessions.Add(sessionId);
        }
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(10);

        var stalled = new List<Socket>();
        var rangesBefore = await StreamRangeCalls(cluster);
        try
        {
            for (var i = 0; i < StalledClients; i++)
                stalled.Add(await OpenAndNeverRead(cluster.GatewayUrl, longSessions[i % LongSessions]));
            // The gateway writes until the kernel's socket buffers (up to 4 MB each here) are full, then waits.
            var settled = await UntilIdle(gatewayPid);
            var ranges = await StreamRangeCalls(cluster) - rangesBefore;
            var withStalled = await NormalClients(cluster, http, "beside stalled clients");
            var memoryAfter = ProcessStats.ResidentBytes(gatewayPid);
            var streamBytes = (long)LongTokens * TokenBytes;
            // Normal readers of the long streams get all of them beside the stalled ones; meanwhile the heap after a collection
            // is sampled (the smallest sample is reported: it still counts garbage of older generations until a full collection).
            var heapAfter = long.MaxValue;
            var gen2Before = await FullCollections(http);
            for (var i = 0; i < 2; i++)
            {
                var reading = SseClient.ReadAllAsync(http, $"/stream/{longSessions[i % LongSessions]}", TimeSpan.FromSeconds(60));
                while (!reading.IsCompleted)
                {
                    heapAfter = Math.Min(heapAfter, await HeapAfterLastCollection(http));
                    await Task.Delay(100);
                }
                Assert.That((await reading).Count(e => e.Event == "token"), Is.EqualTo(LongTokens), "a normal reader of a long stream gets all of it");
                heapAfter = Math.Min(heapAfter, await HeapAfterLastCollection(http));
            }
            var fullCollections = await FullCollections(http) - gen2Before;
            var growth = heapAfter - heapBefore;

            var wholeStream = LongTokens / 256.0;
            TestContext.Progress.WriteLine(
                $"stalled clients: {StalledClients} never-reading clients on {LongSessions} streams of {streamBytes / 1_000_000.0:0} MB each " +
                $"(gateway idle again {settled.TotalSeconds:0.0} s after they connected); the gateway read {ranges / (double)StalledClients:0.0} batches " +
                $"of 256 events from Redis per stalled client (the whole stream is {wholeStream:0.0}); " +
                $"10 normal clients took {baseline.TotalSeconds:0.00} s alone and {withStalled.TotalSeconds:0.00} s beside them (×{withStalled / baseline:0.00}); " +
                $"{fullCollections} full collections while measuring; gateway GC heap after a collection {heapBefore / 1_000_000.0:0} MB → {heapAfter / 1_000_000.0:0} MB " +
                $"({growth / 1024.0 / StalledClients:0} KB per stalled client, each leaving {streamBytes / 1_000_000.0:0} MB unread); " +
                $"RSS {memoryBefore / 1_000_000.0:0} MB → {memoryAfter / 1_000_000.0:0} MB");
            Assert.That(cluster.Gateways[0].HasExited, Is.False);
            Assert.That(withStalled, Is.LessThan(baseline * 4 + TimeSpan.FromSeconds(1)), "normal clients are not held up by stalled ones");
            // Bounded: the gateway reads the next batch only once the last one was flushed, so a stalled client costs what
            // its socket buffers took (up to 4 MB of kernel memory here, about 2 MB in practice) plus one batch of 256 events;
            // a gateway that buffered what they did not read would fetch the whole stream for each.
            Assert.That(ranges, Is.GreaterThanOrEqualTo(StalledClients), "every stalled client was sent the start of its stream");
            Assert.That(ranges, Is.LessThan(StalledClients * wholeStream / 2), "the gateway does not read ahead of a stalled client");
            // The managed heap after a collection and the RSS are reported above, not asserted: they still count the garbage
            // of the reads (8-13 MB per client over several runs, with only 5 batches read per client), so they say little.
        }
        finally
        {
            foreach (var socket in stalled)
                socket.Dispose();
        }
    }

    /// <summary>10 chats posted and read to their end at once; how long until the last one ended.</summary>
    static async Task<TimeSpan> NormalClients(Cluster cluster, HttpClient http, string label)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            var message = $"{label} {i}";
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message });
            var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
            Assert.That(StreamText.Of(events, taskId), Is.EqualTo(string.Join(' ', Enumerable.Range(1, 40).Select(t => $"{message}:{t}"))));
            Assert.That(events[^1].Event, Is.EqualTo("done"));
        }));
        return clock.Elapsed;
    }

    /// <summary>The gateway's managed heap after its last collection, from its own /metrics (all generations).</summary>
    static async Task<long> HeapAfterLastCollection(HttpClient http)
    {
        var text = await http.GetStringAsync("/metrics");
        return text.Split('\n')
            .Where(line => line.StartsWith("dotnet_gc_last_collection_heap_size_bytes{", StringComparison.Ordinal))
            .Sum(line => (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    static async Task<long> FullCollections(HttpClient http)
    {
        var line = (await http.GetStringAsync("/metrics")).Split('\n')
            .First(l => l.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && l.Contains("gen2", StringComparison.Ordinal));
        return long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    static async Task<long> StreamRangeCalls(Cluster cluster) => (await cluster.RedisCommandCallsAsync()).GetValueOrDefault("xrange");

    /// <summary>Waits (bounded) until the process uses under a tenth of a core over half a second.</summary>
    static async Task<TimeSpan> UntilIdle(int pid)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var cpu = ProcessStats.CpuTime(pid);
            await Task.Delay(500);
            if (ProcessStats.CpuTime(pid) - cpu < TimeSpan.FromMilliseconds(50))
                break;
        }
        return clock.Elapsed;
    }

    /// <summary>A raw HTTP/1.1 stream request on a socket with a tiny receive buffer that is never read.</summary>
    static async Task<Socket> OpenAndNeverRead(Uri gateway, string sessionId)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 2048 };
        await socket.ConnectAsync(gateway.Host, gateway.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes(
            $"GET /stream/{sessionId} HTTP/1.1\r\nHost: {gateway.Authority}\r\nAccept: text/event-stream\r\n\r\n"));
        return socket;
    }
}
