using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LlmStream.Sessions.Tasks;
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
    // At 1,000 streams also with STREAM_MERGE_TOKENS: a stream's tokens that reach the store in one call become one event.
    [TestCase(1000, 50, 500, false)]
    [TestCase(1000, 50, 500, true)]
    [TestCase(500, 50, 500, false)]
    [TestCase(200, 50, 500, false)]
    public async Task Concurrent_streams_added_latency(int streams, int tokensPerSecond, int tokensPerAnswer, bool merge)
    {
        var ramp = TimeSpan.FromSeconds(2);
        await using var cluster = await Cluster.StartAsync("bench-streams", settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = streams.ToString(CultureInfo.InvariantCulture),
            ["STREAM_MERGE_TOKENS"] = merge ? "true" : "false",
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
            var tokenEvents = 0;
            var cpuBefore = cluster.CpuTimes();
            var commandsBefore = await cluster.RedisCommandCallsAsync();
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
                    Interlocked.Increment(ref tokenEvents);
                    // One stamp per token the provider sent; an event carries several when the worker merged them.
                    foreach (var sent in SentAt(e.Data))
                    {
                        tokens++;
                        if (sent >= connectedAt) // tokens sent before the client connected were replayed, not streamed live
                            latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                    }
                }
                if (tokens != tokensPerAnswer)
                    Interlocked.Increment(ref broken);
            }).ToList();
            await Task.WhenAll(readers);
            var elapsed = clock.Elapsed;
            var cpu = cluster.CpuSince(cpuBefore);
            var commands = (await cluster.RedisCommandCallsAsync()).ToDictionary(c => c.Key, c => c.Value - commandsBefore.GetValueOrDefault(c.Key));

            TestContext.Progress.WriteLine($"round {round}: {elapsed.TotalSeconds:0.0} s, CPU s gateway {cpu["gateway"].TotalSeconds:0.0}, worker {cpu["worker"].TotalSeconds:0.0}, " +
                                           $"worker RSS {ProcessStats.ResidentBytes(cluster.Workers[0].Pid) / 1048576} MB, gateway RSS {ProcessStats.ResidentBytes(cluster.Gateway!.Pid) / 1048576} MB");
            if (round == 0)
                continue;

            var sorted = latencies.Order().ToArray();
            double Percentile(double p) => sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(p * sorted.Length))];
            var events = streams * tokensPerAnswer;
            var line = $"| {streams} streams × {tokensPerSecond} tokens/s × {tokensPerAnswer} tokens, STREAM_MERGE_TOKENS={merge.ToString().ToLowerInvariant()} | {events / elapsed.TotalSeconds:0} tokens/s in {tokenEvents / (double)events:0.00} SSE events per token | " +
                       $"p50 {Percentile(0.50):0.0} ms | p99 {Percentile(0.99):0.0} ms | max {sorted[^1]:0} ms | lost or repeated: {broken} | " +
                       "CPU µs per token: " + string.Join(", ", cpu.Select(p => $"{p.Key} {p.Value.TotalMicroseconds / events:0.0}")) + " | " +
                       $"CPU use {cpu.Values.Sum(c => c.TotalSeconds) / elapsed.TotalSeconds:0.00} of 2 cores over {elapsed.TotalSeconds:0.0} s | " +
                       $"Redis per token: {commands.GetValueOrDefault("evalsha") / (double)events:0.000} script calls, {commands.GetValueOrDefault("xadd") / (double)events:0.00} XADD, " +
                       $"{commands.GetValueOrDefault("spublish") / (double)events:0.00} SPUBLISH |";
            TestContext.Progress.WriteLine(line);
            await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-streams.md"), line + "\n");
            Assert.That(broken, Is.Zero, "no lost or repeated event");
        }
    }

    /// <summary>The provider's send stamps in a token event's text (" stamp" per token), read without a JSON parser so the clients stay cheap.</summary>
    static List<long> SentAt(string data)
    {
        const string Text = "\"text\":\"";
        var start = data.IndexOf(Text, StringComparison.Ordinal) + Text.Length;
        var text = data.AsSpan(start);
        text = text[..text.IndexOf('"')];
        var stamps = new List<long>(1);
        foreach (var range in text.Split(' '))
        {
            if (!text[range].IsEmpty)
                stamps.Add(long.Parse(text[range], CultureInfo.InvariantCulture));
        }
        return stamps;
    }

    /// <summary>
    /// Open streams that wait (their task stays queued: no worker), each of its own session, keep-alives only: the
    /// gateway's memory per stream, and what gateway and Redis spend on them per second, as a share of one core.
    /// </summary>
    [TestCase(10_000)]
    public async Task Idle_open_streams(int streams)
    {
        await using var cluster = await Cluster.StartAsync("bench-idle", workers: 0);
        using var http = cluster.Client();
        var sessions = new ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, streams), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, _) =>
            sessions.Add((await cluster.PostChatAsync(http, new { message = $"idle {i}" })).SessionId));
        var gateway = cluster.Gateway!.Pid;
        // Four keep-alive intervals (SSE_KEEPALIVE_SECONDS=15), first with no stream open, then with every stream idle.
        var window = TimeSpan.FromSeconds(60);
        async Task<(double Gateway, double Redis)> CpuShare()
        {
            var (gatewayCpu, redisCpu) = (ProcessStats.CpuTime(gateway), ProcessStats.CpuTime(cluster.Redis.Pid));
            await Task.Delay(window);
            return ((ProcessStats.CpuTime(gateway) - gatewayCpu) / window, (ProcessStats.CpuTime(cluster.Redis.Pid) - redisCpu) / window);
        }
        var none = await CpuShare();
        var before = ProcessStats.ResidentBytes(gateway);

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var opened = new ConcurrentBag<HttpResponseMessage>();
        await Parallel.ForEachAsync(sessions, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (session, _) =>
        {
            var response = await http.GetAsync($"/stream/{session}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            response.EnsureSuccessStatusCode();
            opened.Add(response);
        });
        // Every client drains its stream (the keep-alives), as a browser would.
        var draining = opened.Select(r => Task.Run(async () =>
        {
            var buffer = new byte[256];
            var body = await r.Content.ReadAsStreamAsync(cts.Token);
            try
            {
                while (await body.ReadAsync(buffer, cts.Token) > 0) { }
            }
            catch (OperationCanceledException) { }
        })).ToList();
        await Task.Delay(TimeSpan.FromSeconds(5));
        var after = ProcessStats.ResidentBytes(gateway);
        var idle = await CpuShare();
        var line = $"| {opened.Count} idle open streams, one session each | gateway RSS {before / 1048576.0:0} MB → {after / 1048576.0:0} MB, " +
                   $"{(after - before) / (double)opened.Count / 1024:0.0} KB per open stream | CPU over {window.TotalSeconds:0} s: gateway {idle.Gateway:P2} of a core, " +
                   $"Redis {idle.Redis:P2} (with no stream open: {none.Gateway:P2}, {none.Redis:P2}) |";
        TestContext.Progress.WriteLine(line);
        await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-streams.md"), line + "\n");
        Assert.That(draining.Count(t => t.IsCompleted), Is.Zero, "every stream stayed open");
        await cts.CancelAsync();
        foreach (var response in opened)
            response.Dispose();
        await Task.WhenAll(draining);
    }

    /// <summary>
    /// Bytes Redis holds per finished chat of 500 tokens (its stream, task record and session index), with and without
    /// COMPACT_FINISHED_STREAMS: used_memory after 200 such chats, each of its own session, less before, per chat.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public async Task Redis_bytes_per_finished_chat(bool compact)
    {
        const int Chats = 200;
        const int Tokens = 500;
        await using var cluster = await Cluster.StartAsync("bench-bytes", settings: new Dictionary<string, string>
        {
            ["COMPACT_FINISHED_STREAMS"] = compact ? "true" : "false",
            ["CHAT_CONCURRENCY"] = "32",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        string[] words = [" the", " model", " answers", " with", " tokens", " of", " about", " four", " bytes", " too"];
        cluster.Provider.Behavior.Reply = _ => string.Concat(Enumerable.Range(0, Tokens).Select(i => words[i % words.Length]));
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(1);
        await using var redis = await cluster.ConnectRedisAsync();
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        async Task<long> UsedMemory()
        {
            var info = await server.InfoRawAsync("memory") ?? "";
            var line = info.Split('\n').First(l => l.StartsWith("used_memory:", StringComparison.Ordinal));
            return long.Parse(line["used_memory:".Length..].Trim(), CultureInfo.InvariantCulture);
        }
        var message = "Explain in a few paragraphs how a message queue keeps work that was accepted from being lost.";
        // One chat first: connections, scripts and pools exist before the measure starts.
        var (warm, _) = await cluster.PostChatAsync(http, new { message });
        await cluster.WaitForEndAsync(http, warm, TimeSpan.FromSeconds(60));
        var before = await UsedMemory();
        var posted = new ConcurrentBag<(string TaskId, string SessionId)>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Chats), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (_, _) =>
            posted.Add(await cluster.PostChatAsync(http, new { message })));
        foreach (var (taskId, _) in posted)
        {
            var end = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(120));
            Assert.That(end.GetProperty("status").GetString(), Is.EqualTo("completed"));
        }
        // The queues and consumer bookkeeping of the broker are not the chats': RabbitMQ carries them here.
        var perChat = (await UsedMemory() - before) / (double)Chats;
        var (_, session) = posted.First();
        var db = redis.GetDatabase();
        var streamBytes = (long?)await db.ExecuteAsync("MEMORY", "USAGE", RedisTaskStore.StreamKey(session).ToString(), "SAMPLES", "0") ?? 0;
        var taskBytes = (long?)await db.ExecuteAsync("MEMORY", "USAGE", RedisTaskStore.TaskKey(posted.First().TaskId).ToString(), "SAMPLES", "0") ?? 0;
        var turnsBytes = (long?)await db.ExecuteAsync("MEMORY", "USAGE", RedisTaskStore.TurnsKey(session).ToString(), "SAMPLES", "0") ?? 0;
        var entries = await db.StreamLengthAsync(RedisTaskStore.StreamKey(session));
        var events = (await SseClient.ReadAllAsync(http, $"/stream/{session}", TimeSpan.FromSeconds(30))).Count(e => e.Event == "token");
        var line = $"| finished chat of {Tokens} tokens, COMPACT_FINISHED_STREAMS={compact.ToString().ToLowerInvariant()} | used_memory {perChat / 1024:0.0} KB per chat " +
                   $"| one chat: stream {streamBytes / 1024.0:0.0} KB in {entries} entries, task record {taskBytes / 1024.0:0.0} KB, session index {turnsBytes} B " +
                   $"| 1 million chats a day at RESULT_TTL=86400: {perChat * 1_000_000 / 1e9:0.0} GB |";
        TestContext.Progress.WriteLine(line);
        await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-streams.md"), line + "\n");
        Assert.That(events, Is.EqualTo(Tokens), "a reader of the finished stream gets every token");
    }
}
