using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Benchmarks;

/// <summary>
/// `make bench`: many concurrent streams through one gateway process (RabbitMQ broker, Redis streams, one chat
/// worker process). The fake provider stamps each chunk with the time it sent it; the clients, in the same
/// process, measure how much later the event reached them. Measures; asserts only that nothing was lost or repeated.
/// </summary>
[Explicit("a benchmark: run with make bench")]
[Category("Benchmark")]
public sealed class Stream_fanout
{
    // Answers of 500 tokens (10 s at 50 tokens/s), the streams starting evenly over 2 s: a steady load of that many
    // concurrent streams, as a gateway sees it, rather than every chat starting in the same instant.
    [TestCase(1000, 50, 500)]
    [TestCase(500, 50, 500)]
    [TestCase(200, 50, 500)]
    public async Task Concurrent_streams_added_latency(int streams, int tokensPerSecond, int tokensPerAnswer)
    {
        var ramp = TimeSpan.FromSeconds(2);
        await using var cluster = await Cluster.StartAsync("bench-streams", settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = streams.ToString(CultureInfo.InvariantCulture),
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        cluster.Provider.Behavior.Reply = _ => string.Join(' ', Enumerable.Range(0, tokensPerAnswer).Select(i => $"x{i}"));
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromSeconds(1.0 / tokensPerSecond);
        cluster.Provider.Behavior.StampTokens = true;
        // The same load three times on the same processes; the first warms them up (JIT tiers, pools, connections).
        for (var round = 0; round < 3; round++)
        {
            var latencies = new ConcurrentBag<double>();
            var broken = 0;
            var cpuBefore = cluster.CpuTimes();
            var clock = Stopwatch.StartNew();
            var readers = Enumerable.Range(0, streams).Select(async i =>
            {
                await Task.Delay(ramp * i / streams);
                var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message = $"stream {i}" });
                using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
                using var response = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
                var connectedAt = Stopwatch.GetTimestamp();
                var ids = new HashSet<string>();
                var tokens = 0;
                await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
                {
                    if (!ids.Add(e.Id!))
                        Interlocked.Increment(ref broken);
                    if (e.Event != "token")
                        continue;
                    tokens++;
                    var sent = SentAt(e.Data);
                    if (sent >= connectedAt) // tokens sent before the client connected were replayed, not streamed live
                        latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                }
                if (tokens != tokensPerAnswer)
                    Interlocked.Increment(ref broken);
            }).ToList();
            await Task.WhenAll(readers);
            var elapsed = clock.Elapsed;
            var cpu = cluster.CpuSince(cpuBefore);

            TestContext.Progress.WriteLine($"round {round}: {elapsed.TotalSeconds:0.0} s, CPU s gateway {cpu["gateway"].TotalSeconds:0.0}, worker {cpu["worker"].TotalSeconds:0.0}, " +
                                           $"worker RSS {ProcessStats.ResidentBytes(cluster.Workers[0].Pid) / 1048576} MB, gateway RSS {ProcessStats.ResidentBytes(cluster.Gateway!.Pid) / 1048576} MB");
            if (round == 0)
                continue;

            var sorted = latencies.Order().ToArray();
            double Percentile(double p) => sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(p * sorted.Length))];
            var events = streams * tokensPerAnswer;
            var line = $"| {streams} streams × {tokensPerSecond} tokens/s × {tokensPerAnswer} tokens | {events / elapsed.TotalSeconds:0} events/s | " +
                       $"p50 {Percentile(0.50):0.0} ms | p99 {Percentile(0.99):0.0} ms | max {sorted[^1]:0} ms | lost or repeated: {broken} | " +
                       "CPU µs per event: " + string.Join(", ", cpu.Select(p => $"{p.Key} {p.Value.TotalMicroseconds / events:0.0}")) + " | " +
                       $"CPU use {cpu.Values.Sum(c => c.TotalSeconds) / elapsed.TotalSeconds:0.00} of 2 cores over {elapsed.TotalSeconds:0.0} s |";
            TestContext.Progress.WriteLine(line);
            await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-streams.md"), line + "\n");
            Assert.That(broken, Is.Zero, "no lost or repeated event");
        }
    }

    /// <summary>The provider's send stamp in a token event's text, read without a JSON parser so the clients stay cheap.</summary>
    static long SentAt(string data)
    {
        const string Text = "\"text\":\"";
        var start = data.IndexOf(Text, StringComparison.Ordinal) + Text.Length;
        var digits = data.AsSpan(start).TrimStart(' ');
        return long.Parse(digits[..digits.IndexOf('"')], CultureInfo.InvariantCulture);
    }

    [TestCase(10_000)]
    public async Task Idle_open_streams_memory(int streams)
    {
        // No worker: the task stays queued and every stream stays open, idle but for keep-alives.
        await using var cluster = await Cluster.StartAsync("bench-idle", workers: 0);
        using var http = cluster.Client();
        var (_, sessionId) = await cluster.PostChatAsync(http, new { message = "idle" });
        var gateway = cluster.Gateway!.Pid;
        await Task.Delay(1000);
        var before = ProcessStats.ResidentBytes(gateway);

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var connected = 0;
        var opened = new ConcurrentBag<HttpResponseMessage>();
        await Parallel.ForEachAsync(Enumerable.Range(0, streams), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (_, ct) =>
        {
            var response = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            response.EnsureSuccessStatusCode();
            opened.Add(response);
            Interlocked.Increment(ref connected);
        });
        await Task.Delay(2000);
        var after = ProcessStats.ResidentBytes(gateway);
        var line = $"| {connected} idle open streams | gateway RSS {before / 1048576.0:0} MB → {after / 1048576.0:0} MB | " +
                   $"{(after - before) / (double)connected / 1024:0.0} KB per open stream |";
        TestContext.Progress.WriteLine(line);
        await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-streams.md"), line + "\n");
        foreach (var response in opened)
            response.Dispose();
        Assert.That(connected, Is.EqualTo(streams));
    }
}
