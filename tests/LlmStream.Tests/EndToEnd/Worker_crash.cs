using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// kill -9 of the chat worker in the middle of a generation: the message is delivered again to the other
/// worker, which starts a new attempt; the client sees the new attempt announced and one complete answer. A
/// /v1/responses stream cannot take text back: its response fails instead of being answered twice.
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

    [Test]
    public async Task A_response_whose_worker_dies_mid_answer_fails_instead_of_splicing_a_second_answer()
    {
        _cluster.Provider.Behavior.Reset();
        var reply = string.Join(' ', Enumerable.Range(1, 60).Select(i => $"word{i}"));
        _cluster.Provider.Behavior.Reply = _ => reply;
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(40);
        using var created = await _http.PostAsJsonAsync("/v1/responses", new { model = "gpt-4o-mini", input = "die mid-answer", background = true });
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var taskId = id["resp_".Length..];

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var stream = await _http.GetAsync($"/v1/responses/{id}?stream=true", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var events = new List<SseEvent>();
        ServiceProcess? victim = null;
        await foreach (var e in SseClient.ReadAsync(await stream.Content.ReadAsStreamAsync(cts.Token), cts.Token))
        {
            events.Add(e);
            if (victim is null && events.Count(x => x.Event == "response.output_text.delta") == 5)
            {
                victim = _cluster.Workers.Single(w => w.Output.Contains($"Generating task {taskId}", StringComparison.Ordinal));
                victim.Kill();
            }
        }

        Assert.That(victim, Is.Not.Null, "the worker was killed mid-answer");
        Assert.That(events[^1].Event, Is.EqualTo("response.failed"), _cluster.Logs());
        Assert.That(events.Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("sequence_number").GetInt32()), Is.EqualTo(Enumerable.Range(0, events.Count)));
        var deltas = string.Concat(events.Where(e => e.Event == "response.output_text.delta").Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("delta").GetString()));
        Assert.That(reply, Does.StartWith(deltas), "the first attempt's text, and nothing of a second after it");
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(30));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"));
        Assert.That(status.GetProperty("error").GetString(), Does.Contain("mid-answer"));
        Assert.That(_cluster.Provider.Behavior.Requests.Count(r => r.Messages[^1].Content == "die mid-answer"), Is.EqualTo(1), "the redelivered message called no provider");
        var polled = await _http.GetFromJsonAsync<JsonElement>($"/v1/responses/{id}");
        Assert.That(polled.GetProperty("status").GetString(), Is.EqualTo("failed"));

        await _cluster.StartWorkerAsync(); // two live workers again for the other spec
    }
}
