using System.Diagnostics;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// kill -9 of the chat worker that is generating, at a random token, round after round: four workers, three
/// generations in flight per round, the victim replaced by a fresh worker each time. Every accepted task ends with
/// exactly one terminal event, its last attempt's text is the provider's whole answer, and GET /chat says completed.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Killing_workers_at_random_tokens(string broker)
{
    const int Rounds = 20;
    const int TasksPerRound = 3;
    const int ReplyTokens = 24;

    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"chaos-kill-{broker}", workers: 4, broker: broker, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "4",
            ["REDIS_CLAIM_IDLE_SECONDS"] = "2",
            ["MAX_DELIVERIES"] = "10",
            ["HEARTBEAT_SECONDS"] = "1",
            ["LLM_RPM"] = "0", // no rate limit: this scenario is about crashes alone
            ["LLM_TPM"] = "0",
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
    public async Task Every_accepted_task_ends_once_with_one_attempts_complete_text()
    {
        var random = new Random(broker == "rabbitmq" ? 20261124 : 11242026);
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(20);
        _cluster.Provider.Behavior.Reply = message => string.Join(' ', Enumerable.Range(1, ReplyTokens).Select(i => $"{message}/{i}"));
        var clock = Stopwatch.StartNew();
        var replacements = new List<Task>();
        var kills = 0;
        var restarted = 0;
        var recoveries = new List<double>();

        for (var round = 0; round < Rounds; round++)
        {
            var k = random.Next(1, ReplyTokens - 3);
            var posted = new List<(string TaskId, string SessionId, string Message)>();
            for (var i = 0; i < TasksPerRound; i++)
            {
                var message = $"r{round}t{i}";
                var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message });
                posted.Add((taskId, sessionId, message));
            }

            // Follow the first task of the round; at its k-th token, kill the worker generating it.
            var (target, targetSession, _) = posted[0];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var response = await _http.GetAsync($"/stream/{targetSession}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var events = new List<SseEvent>();
            var killedAt = TimeSpan.Zero;
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
            {
                events.Add(e);
                if (killedAt == TimeSpan.Zero && events.Count(x => x.Event == "token") == k)
                {
                    var victim = await GeneratingWorker(target);
                    victim.Kill();
                    killedAt = clock.Elapsed;
                    kills++;
                    replacements.Add(_cluster.StartWorkerAsync());
                }
                else if (killedAt != TimeSpan.Zero && e.Event == "started" && recoveries.Count < kills)
                {
                    recoveries.Add((clock.Elapsed - killedAt).TotalMilliseconds);
                    restarted++;
                }
            }
            Assert.That(killedAt, Is.Not.EqualTo(TimeSpan.Zero), $"round {round}: the worker was killed at token {k}");

            // The replacement comes up while the next round runs; at least three workers are ready at every kill.
            if (_cluster.Workers.Count(w => !w.HasExited) - replacements.Count(r => !r.IsCompleted) < 3)
                await Task.WhenAll(replacements);

            foreach (var (taskId, sessionId, message) in posted)
                await AssertEndedOnce(taskId, sessionId, message, round, k);
        }

        await Task.WhenAll(replacements);
        TestContext.Progress.WriteLine(
            $"{broker}: {Rounds} rounds, {Rounds * TasksPerRound} tasks, {kills} workers killed by kill -9 at a random token; " +
            $"the followed task started again on another worker in {restarted} rounds (median {Median(recoveries):0} ms after the kill); " +
            $"{_cluster.Provider.Behavior.ChatRequests} provider calls; {clock.Elapsed.TotalSeconds:0} s");
        Assert.That(restarted, Is.GreaterThan(0), "at least one kill hit a generation in the middle");
    }

    /// <summary>The live worker that logged it is generating the task (its log line may trail the token by a moment).</summary>
    async Task<ServiceProcess> GeneratingWorker(string taskId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var holders = _cluster.Workers.Where(w => !w.HasExited && w.Output.Contains($"Generating task {taskId}", StringComparison.Ordinal)).ToList();
            if (holders.Count == 1)
                return holders[0];
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"{holders.Count} live workers say they generate {taskId}\n{_cluster.Logs()}");
            await Task.Delay(10);
        }
    }

    async Task AssertEndedOnce(string taskId, string sessionId, string message, int round, int k)
    {
        var expected = string.Join(' ', Enumerable.Range(1, ReplyTokens).Select(i => $"{message}/{i}"));
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        var context = $"round {round} (killed at token {k}), task {taskId}: {string.Join(" ", events.Select(Describe))}";
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
        Assert.That(events[^1].Event, Is.EqualTo("done"), context);
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(expected), context);
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), context);
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(expected), context);
        var attempts = events.Where(e => e.Event == "started").Select(e => StreamText.DataOf(e).GetProperty("attempt").GetInt32()).ToList();
        Assert.That(attempts, Is.Ordered.Ascending.And.Unique, context);
    }

    static string Describe(SseEvent e) => e.Event switch
    {
        "token" => ".",
        "started" => $"started#{StreamText.DataOf(e).GetProperty("attempt").GetInt32()}",
        _ => e.Event,
    };

    static double Median(List<double> values) => values.Count == 0 ? double.NaN : values.Order().ElementAt(values.Count / 2);
}
