using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Two gateways, one chat worker (one generation at a time), on RabbitMQ and on Redis Streams, each with one redis-server
/// and with a Redis Cluster of three masters: resume, many subscribers, cancel.
/// </summary>
[TestFixture("rabbitmq", 0)]
[TestFixture("redis", 0)]
[TestFixture("rabbitmq", 3)]
[TestFixture("redis", 3)]
public sealed class Streaming_sessions(string broker, int redisMasters)
{
    Cluster _cluster = null!;
    HttpClient _a = null!;
    HttpClient _b = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"streams-{broker}", broker: broker, redisMasters: redisMasters, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "1",
            ["LLM_TIMEOUT"] = "4",
        });
        await _cluster.StartGatewayAsync();
        _a = _cluster.Client(0);
        _b = _cluster.Client(1);
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _a.Dispose();
        _b.Dispose();
        await _cluster.DisposeAsync();
    }

    [SetUp]
    public void ResetProvider() => _cluster.Provider.Behavior.Reset();

    static string Words(int count) => string.Join(' ', Enumerable.Range(1, count).Select(i => $"w{i}"));

    [Test]
    public async Task A_client_cut_off_mid_stream_resumes_on_the_other_gateway_missing_nothing_and_repeating_nothing()
    {
        var reply = Words(40);
        _cluster.Provider.Behavior.Reply = _ => reply;
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(25);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_a, new { message = "resume" });

        var first = new List<SseEvent>();
        using (var cut = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            using var response = await _a.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cut.Token);
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cut.Token), cut.Token))
            {
                first.Add(e);
                if (first.Count(x => x.Event == "token") == 10)
                    break; // the connection is dropped here, mid-stream
            }
        }

        var rest = await SseClient.ReadAllAsync(_b, $"/stream/{sessionId}", TimeSpan.FromSeconds(60), lastEventId: first[^1].Id);
        var everything = await SseClient.ReadAllAsync(_b, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));

        Assert.That(first.Concat(rest).Select(e => e.Id), Is.EqualTo(everything.Select(e => e.Id)), "nothing lost, nothing repeated");
        Assert.That(StreamText.Of(first.Concat(rest), taskId), Is.EqualTo(reply));
        Assert.That(rest.Last().Event, Is.EqualTo("done"));
    }

    [Test]
    public async Task Several_subscribers_on_both_gateways_see_the_same_events()
    {
        _cluster.Provider.Behavior.Reply = _ => Words(20);
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(10);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_a, new { message = "many" });
        var readers = new[] { _a, _a, _b, _b }.Select(http => SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60))).ToList();
        var results = await Task.WhenAll(readers);
        foreach (var events in results)
        {
            Assert.That(events.Select(e => e.Id), Is.EqualTo(results[0].Select(e => e.Id)));
            Assert.That(StreamText.Of(events, taskId), Is.EqualTo(Words(20)));
        }
    }

    [Test]
    public async Task A_client_that_leaves_does_not_cancel_the_generation()
    {
        _cluster.Provider.Behavior.Reply = _ => Words(30);
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(20);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_a, new { message = "leave" });
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            using var response = await _a.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var tokens = 0;
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
            {
                if (e.Event == "token" && ++tokens == 2)
                    break;
            }
        }
        var status = await _cluster.WaitForEndAsync(_a, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(Words(30)));
    }

    [Test]
    public async Task Cancelling_a_queued_task_means_it_never_starts()
    {
        _cluster.Provider.Behavior.HangNext(); // holds the only slot until LLM_TIMEOUT
        var blocker = await _cluster.PostChatAsync(_a, new { message = "blocker" });
        Assert.That(await _cluster.Provider.WaitUntilAsync(b => b.ChatRequests == 1, TimeSpan.FromSeconds(30)), Is.True);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_a, new { message = "cancel me while queued" });

        var response = await _b.DeleteAsync($"/chat/{taskId}");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var events = await SseClient.ReadAllAsync(_a, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.Select(e => e.Event), Is.EqualTo(new[] { "queued", "cancelled" }));

        // A later message on the same queue is consumed after the cancelled one: by then it had its chance to start.
        await _cluster.WaitForEndAsync(_a, blocker.TaskId, TimeSpan.FromSeconds(30));
        var probe = await _cluster.PostChatAsync(_a, new { message = "probe" });
        await _cluster.WaitForEndAsync(_a, probe.TaskId, TimeSpan.FromSeconds(30));
        Assert.That(_cluster.Provider.Behavior.Requests.Select(r => r.Messages.Last().Content), Does.Not.Contain("cancel me while queued"));
        var status = await _a.GetFromJsonAsync<JsonElement>($"/chat/{taskId}");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        Assert.That(status.GetProperty("attempt").GetInt32(), Is.Zero);
    }

    [Test]
    public async Task Cancelling_a_running_generation_stops_the_providers_call_and_ends_the_stream_with_cancelled()
    {
        _cluster.Provider.Behavior.Reply = _ => Words(200);
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(50);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_a, new { message = "cancel me while running" });

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var stream = await _a.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var events = new List<SseEvent>();
        await foreach (var e in SseClient.ReadAsync(await stream.Content.ReadAsStreamAsync(cts.Token), cts.Token))
        {
            events.Add(e);
            if (events.Count(x => x.Event == "token") == 3)
                Assert.That((await _b.DeleteAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        Assert.That(events.Last().Event, Is.EqualTo("cancelled"));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        Assert.That(await _cluster.Provider.WaitUntilAsync(b => b.Requests.Any(r => r.Cancelled), TimeSpan.FromSeconds(10)), Is.True,
            "the provider saw its HTTP call cancelled");
        Assert.That(events.Count(e => e.Event == "token"), Is.LessThan(200));
    }

    [Test]
    public async Task Cancelling_a_finished_task_is_a_conflict_and_an_unknown_one_is_not_found()
    {
        var (taskId, _) = await _cluster.PostChatAsync(_a, new { message = "finish first" });
        await _cluster.WaitForEndAsync(_a, taskId, TimeSpan.FromSeconds(30));
        var finished = await _a.DeleteAsync($"/chat/{taskId}");
        Assert.That(finished.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That((await finished.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), Does.Contain("completed"));
        Assert.That((await _a.DeleteAsync("/chat/0123456789abcdef0123456789abcdef")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_session_with_a_running_task_rejects_a_second_one()
    {
        _cluster.Provider.Behavior.HangNext();
        var session = "mine-" + Guid.NewGuid().ToString("N");
        var (taskId, _) = await _cluster.PostChatAsync(_a, new { message = "first", session_id = session });
        var second = await _b.PostAsJsonAsync("/chat", new { message = "second", session_id = session });
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That((await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString(), Is.EqualTo("session_id"));
        await _a.DeleteAsync($"/chat/{taskId}");
        var third = await _b.PostAsJsonAsync("/chat", new { message = "third", session_id = session });
        Assert.That(third.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "once the running task ended, the session takes a new one");
    }
}
