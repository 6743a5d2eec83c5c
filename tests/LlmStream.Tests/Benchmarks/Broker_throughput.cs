using System.Diagnostics;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Benchmarks;

/// <summary>
/// `make bench`: chats per second through each broker, end to end (POST /chat → broker → chat worker →
/// provider → Redis stream → completed), with the fake provider answering at once. Measures; asserts only
/// that every request completed.
/// </summary>
[Explicit("a benchmark: run with make bench")]
[Category("Benchmark")]
[TestFixture("rabbitmq")]
[TestFixture("redis")]
[TestFixture("inmemory")]
public sealed class Broker_throughput(string broker)
{
    const int Requests = 2000;
    const int Posters = 32;

    [Test]
    public async Task Chats_per_second()
    {
        await using var cluster = await Cluster.StartAsync($"bench-{broker}", broker: broker, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "64",
            // The provider's rate limit (500 requests/min by default) would be all this measured.
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        cluster.Provider.Behavior.Reply = _ => "ok";
        using var http = cluster.Client();
        // Warm-up: JIT, connections, queue declarations.
        for (var i = 0; i < 20; i++)
            await cluster.WaitForEndAsync(http, (await cluster.PostChatAsync(http, new { message = "warm-up" })).TaskId, TimeSpan.FromSeconds(30));
        var before = cluster.Provider.Behavior.Requests.Count(r => r.Completed);

        var ids = new string[Requests];
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Posters).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
                ids[i] = (await cluster.PostChatAsync(http, new { message = $"bench {i}", priority = i % 21 - 10 })).TaskId;
        }));
        var enqueued = clock.Elapsed;
        Assert.That(await cluster.Provider.WaitUntilAsync(b => b.Requests.Count(r => r.Completed) >= before + Requests, TimeSpan.FromMinutes(5)), Is.True);
        var completed = clock.Elapsed;
        foreach (var id in ids)
            Assert.That((await cluster.WaitForEndAsync(http, id, TimeSpan.FromSeconds(30))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        var line = $"| {broker} | {Requests} | {Requests / enqueued.TotalSeconds:0} | {Requests / completed.TotalSeconds:0} |";
        TestContext.Progress.WriteLine(line);
        await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-brokers.md"), line + "\n");
    }
}
