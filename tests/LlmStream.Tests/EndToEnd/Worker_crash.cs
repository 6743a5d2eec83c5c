using System.Diagnostics;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// kill -9 of the chat worker in the middle of a generation: the message is delivered again to the other
/// worker, which starts a new attempt; the client sees the new attempt announced and one complete answer.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Worker_crash(string broker)
{
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"crash-{broker}", workers: 2, broker: broker, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "1",
            ["REDIS_CLAIM_IDLE_SECONDS"] = "2",
        });
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [Test]
    public async Task Loses_nothing_and_the_answer_completes_on_another_worker()
    {
        var reply = string.Join(' ', Enumerable.Range(1, 60).Select(i => $"word{i}"));
        _cluster.Provider.Behavior.Reply = _ => reply;
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(40);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = "survive a crash" });

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var response = await _http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var events = new List<SseEvent>();
        var killedAt = TimeSpan.Zero;
        var recoveredAt = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        ServiceProcess? victim = null;
        await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
        {
            events.Add(e);
            if (victim is null && events.Count(x => x.Event == "token") == 5)
            {
                victim = _cluster.Workers.Single(w => w.Output.Contains($"Generating task {taskId}", StringComparison.Ordinal));
                victim.Kill();
                killedAt = clock.Elapsed;
            }
            if (victim is not null && recoveredAt == TimeSpan.Zero && e.Event == "started")
                recoveredAt = clock.Elapsed;
        }

        TestContext.Progress.WriteLine($"{broker}: a killed worker's message started again on another worker {(recoveredAt - killedAt).TotalMilliseconds:0} ms after kill -9");
        Assert.That(victim, Is.Not.Null, "the worker was killed mid-generation");
        Assert.That(recoveredAt, Is.GreaterThan(TimeSpan.Zero), _cluster.Logs());
        Assert.That(events.Where(e => e.Event == "started").Select(e => StreamText.DataOf(e).GetProperty("attempt").GetInt32()), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(reply), "one attempt's complete text");
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(10));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(reply));
    }
}
