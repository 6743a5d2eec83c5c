using LlmStream.Messaging.RedisStreams;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;
using StackExchange.Redis;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// The same behaviour on every broker: a gateway and one chat worker process (in-memory: one process), one
/// message in flight at a time, short retry and time limits so that each scenario stays quick. "rabbitmq-quorum" runs
/// on a three-node RabbitMQ cluster with quorum work queues.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("rabbitmq-quorum")]
[TestFixture("redis")]
[TestFixture("inmemory")]
public sealed class Broker_behaviour(string fixture)
{
    readonly string broker = fixture.Split('-')[0];
    readonly bool quorum = fixture.EndsWith("-quorum", StringComparison.Ordinal);
    Cluster _cluster = null!;
    HttpClient _http = null!;

    static readonly Dictionary<string, string> Settings = new()
    {
        ["CHAT_CONCURRENCY"] = "1",
        ["RETRY_LIMIT"] = "3",
        ["RETRY_BASE_MS"] = "100",
        ["LLM_TIMEOUT"] = "3",
        ["PRIORITY_FAIRNESS"] = "10",
    };

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = quorum
            ? await Cluster.StartAsync("behaviour-quorum", broker: broker, rabbitMqCluster: await SharedServices.RabbitMqClusterAsync(),
                settings: new Dictionary<string, string>(Settings) { ["RABBITMQ_QUEUE_TYPE"] = "quorum" })
            : await Cluster.StartAsync($"behaviour-{broker}", broker: broker, settings: Settings);
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [SetUp]
    public void ResetProvider() => _cluster.Provider.Behavior.Reset();

    [Test]
    public async Task Delivers_every_accepted_request_exactly_once()
    {
        var tasks = new List<(string TaskId, string Message)>();
        for (var i = 0; i < 20; i++)
        {
            var message = $"delivery {i}";
            tasks.Add(((await _cluster.PostChatAsync(_http, new { message, priority = i % 3 * 7 - 7 })).TaskId, message));
        }

        foreach (var (taskId, message) in tasks)
        {
            var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
            Assert.That(status.GetProperty("result").GetString(), Is.EqualTo("Echo: " + message));
            Assert.That(status.GetProperty("attempt").GetInt32(), Is.EqualTo(1));
        }
        var asked = _cluster.Provider.Behavior.Requests.Select(r => r.Messages.Last().Content).ToList();
        Assert.That(asked, Is.EquivalentTo(tasks.Select(t => t.Message)), "each message reached the provider once");
    }

    [Test]
    public async Task Starts_high_before_default_before_low_under_backlog()
    {
        // A generation that holds the only slot until the time limit, while a backlog builds up behind it. Each of the
        // others takes a moment (100 ms a token): long enough for RabbitMQ to refill the worker's prefetch meanwhile, so
        // what starts next is chosen among everything posted, not among what happened to have arrived.
        _cluster.Provider.Behavior.HangNext();
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(100);
        var blocker = await _cluster.PostChatAsync(_http, new { message = "blocker" });
        Assert.That(await _cluster.Provider.WaitUntilAsync(b => b.ChatRequests == 1, TimeSpan.FromSeconds(30)), Is.True, _cluster.Logs());

        // Inside `high` the priorities rise in the order sent: 6, 7, 8 (three, so all of them are already delivered
        // and waiting in the worker when the slot frees: CHAT_CONCURRENCY=1 prefetches three per queue).
        var backlog = new List<string>();
        foreach (var (name, priorities) in new[] { ("low", new[] { -8, -8, -8, -8 }), ("default", new[] { 0, 0, 0, 0 }), ("high", new[] { 6, 7, 8 }) })
        {
            for (var i = 0; i < priorities.Length; i++)
            {
                var message = $"{name}-{i}-{priorities[i]}";
                backlog.Add((await _cluster.PostChatAsync(_http, new { message, priority = priorities[i] })).TaskId);
            }
        }
        await _cluster.WaitForEndAsync(_http, blocker.TaskId, TimeSpan.FromSeconds(30));
        foreach (var taskId in backlog)
            await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));

        var started = _cluster.Provider.Behavior.Requests.Skip(1).Select(r => r.Messages.Last().Content).ToList();
        var order = started.Select(m => m.Split('-')[0]).ToList();
        TestContext.Progress.WriteLine($"{fixture} start order under backlog: {string.Join(" ", started)}");
        Assert.That(order.Take(3), Is.All.EqualTo("high"), string.Join(" ", started));
        double Mean(string name) => order.Select((q, i) => (q, i)).Where(x => x.q == name).Average(x => x.i);
        Assert.That(Mean("default"), Is.LessThan(Mean("low")), string.Join(" ", started));
        // Within a queue a higher number goes first where the broker allows it: RabbitMQ's classic priority queues (and
        // the worker keeps that order for what it already took); quorum queues on RabbitMQ 3.x, Redis Streams and the
        // in-memory bus are first in, first out.
        if (broker == "rabbitmq" && !quorum)
            Assert.That(started.Take(3), Is.EqualTo(new[] { "high-2-8", "high-1-7", "high-0-6" }), string.Join(" ", started));
    }

    [Test]
    public async Task The_work_queues_are_quorum_queues_on_every_node_when_asked()
    {
        if (!quorum)
            Assert.Ignore("classic queues here (RABBITMQ_QUEUE_TYPE unset)");
        var rabbitMq = await SharedServices.RabbitMqClusterAsync();
        foreach (var queue in new[] { "high", "default", "low" })
        {
            var info = await rabbitMq.QueueAsync(_cluster.VirtualHost, queue);
            Assert.That(info.GetProperty("type").GetString(), Is.EqualTo("quorum"), queue);
            Assert.That(info.GetProperty("members").GetArrayLength(), Is.EqualTo(3), $"{queue} is replicated on the three nodes");
        }
    }

    [Test]
    public async Task A_low_priority_message_is_not_starved_by_a_stream_of_high_ones()
    {
        _cluster.Provider.Behavior.HangNext();
        var blocker = await _cluster.PostChatAsync(_http, new { message = "blocker" });
        Assert.That(await _cluster.Provider.WaitUntilAsync(b => b.ChatRequests == 1, TimeSpan.FromSeconds(30)), Is.True, _cluster.Logs());
        var low = await _cluster.PostChatAsync(_http, new { message = "low-patient", priority = -10 });
        var high = new List<string>();
        for (var i = 0; i < 25; i++)
            high.Add((await _cluster.PostChatAsync(_http, new { message = $"high-{i}", priority = 10 })).TaskId);

        await _cluster.WaitForEndAsync(_http, low.TaskId, TimeSpan.FromSeconds(60));
        foreach (var taskId in high)
            await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        var order = _cluster.Provider.Behavior.Requests.Skip(1).Select(r => r.Messages.Last().Content).ToList();
        var position = order.IndexOf("low-patient");
        TestContext.Progress.WriteLine($"{broker}: the low message started at position {position} of {order.Count}");
        Assert.That(position, Is.InRange(0, 10), "PRIORITY_FAIRNESS=10 gives every 10th start to the longest waiting");
    }

    [Test]
    public async Task Retries_transient_failures_and_honours_retry_after()
    {
        _cluster.Provider.Behavior.FailNext(429, retryAfter: TimeSpan.FromSeconds(1), message: "slow down");
        _cluster.Provider.Behavior.FailNext(503);
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = "persist" });

        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), _cluster.Logs());
        Assert.That(status.GetProperty("attempt").GetInt32(), Is.EqualTo(3));
        var calls = _cluster.Provider.Behavior.Requests;
        Assert.That(calls, Has.Count.EqualTo(3));
        Assert.That(calls[1].ReceivedAt - calls[0].ReceivedAt, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)), "Retry-After: 1 was honoured");
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.Where(e => e.Event == "started").Select(e => StreamText.DataOf(e).GetProperty("attempt").GetInt32()), Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo("Echo: persist"));
    }

    [Test]
    public async Task A_task_whose_retries_run_out_fails_with_a_readable_reason_and_its_message_is_dead_lettered()
    {
        var deadBefore = await DeadLetters();
        var statsBefore = await DeadLetteredOnDefaultQueue();
        _cluster.Provider.Behavior.FailNext(500, count: 4, message: "upstream exploded");
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = "doomed" });

        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"));
        Assert.That(status.GetProperty("error").GetString(), Is.EqualTo("the model provider failed (HTTP 500)"));
        Assert.That(_cluster.Provider.Behavior.ChatRequests, Is.EqualTo(4), "first attempt and RETRY_LIMIT=3 retries");
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        if (broker == "inmemory")
            return; // an in-process bus keeps its error queue in process
        await WaitFor(async () => await DeadLetters() == deadBefore + 1, "the message reaches the dead letters");
        Assert.That(await DeadLetteredOnDefaultQueue(), Is.EqualTo(statsBefore + 1), "GET /stats counts it on the queue it came from");
    }

    [Test]
    public async Task A_v1_stream_that_fails_mid_answer_ends_with_one_error_and_no_second_answer_runs_unseen()
    {
        // A long answer, so a retry takes far longer than the gateway takes to see it begin (cancelling cuts it short).
        _cluster.Provider.Behavior.Reply = _ => "one two three " + string.Join(' ', Enumerable.Range(4, 200).Select(i => $"w{i}"));
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(20);
        _cluster.Provider.Behavior.FailMidStreamNext(afterTokens: 3);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-4o-mini", stream = true, messages = new[] { new { role = "user", content = "break mid-answer" } } }),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var taskId = response.Headers.GetValues("X-LlmStream-Task-Id").Single();
        var body = await response.Content.ReadAsStringAsync();

        // What the client got: the first attempt's tokens, then one error saying why, and [DONE].
        var data = body.Split("\n").Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]).ToList();
        Assert.That(data, Has.Count.GreaterThan(2), body);
        Assert.That(data[^2], Does.Contain("\"error\"").And.Contain("mid-answer"), body);
        Assert.That(data[^1], Is.EqualTo("[DONE]"), body);
        Assert.That(data.Count(d => d.Contains("\"error\"", StringComparison.Ordinal)), Is.EqualTo(1), body);
        Assert.That(data.Any(d => d.Contains("one", StringComparison.Ordinal)), Is.True, "tokens went out before the failure: " + body);

        // And the task ended there: the retry that had started was stopped, not run to a second answer nobody sees.
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(30));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"), status.ToString());
        Assert.That(status.GetProperty("error").GetString(), Does.Contain("mid-answer"));
        await WaitFor(() => Task.FromResult(_cluster.Logs().Contains($"Task {taskId} was cancelled", StringComparison.Ordinal)
                                            || _cluster.Logs().Contains($"Task {taskId} attempt 2 is no longer current", StringComparison.Ordinal)),
            "the worker stops the second attempt");
        var calls = _cluster.Provider.Behavior.Requests.Where(r => r.Messages.Last().Content == "break mid-answer").ToList();
        Assert.That(calls.Count(r => r.Completed), Is.Zero, "no provider call ran to the end");
        Assert.That(calls, Has.Count.LessThanOrEqualTo(2), "one retry at most was begun");
    }

    [Test]
    public async Task A_v1_stream_repeated_with_its_idempotency_key_after_a_retry_gets_the_new_attempt_whole()
    {
        var answer = "one two three " + string.Join(' ', Enumerable.Range(4, 20).Select(i => $"w{i}"));
        _cluster.Provider.Behavior.Reply = _ => answer;
        _cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(20);
        _cluster.Provider.Behavior.FailMidStreamNext(afterTokens: 3);
        var key = Guid.NewGuid().ToString("N");
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = JsonContent.Create(new { model = "gpt-4o-mini", stream = true, messages = new[] { new { role = "user", content = "retried while away" } } }),
            };
            request.Headers.Add("Idempotency-Key", key);
            return request;
        }

        // The first client reads two tokens and leaves; the provider then fails and the worker retries with nobody reading.
        // (Its connection closes at once: no drain of the rest of the response, which would keep it reading.)
        string taskId;
        using (var leaving = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = _cluster.GatewayUrl })
        using (var first = await leaving.SendAsync(Request(), HttpCompletionOption.ResponseHeadersRead))
        {
            taskId = first.Headers.GetValues("X-LlmStream-Task-Id").Single();
            using var reader = new StreamReader(await first.Content.ReadAsStreamAsync());
            var tokens = 0;
            while (tokens < 2 && await reader.ReadLineAsync() is { } line)
                tokens += line.Contains("\"content\":\"", StringComparison.Ordinal) && !line.Contains("\"content\":\"\"", StringComparison.Ordinal) ? 1 : 0;
        }
        await WaitFor(async () => (await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}")).GetProperty("attempt").GetInt32() == 2, "the retry begins");

        // The repeat joins the task at the attempt running now: its whole answer, not attempt 1's text before it.
        using var repeat = await _http.SendAsync(Request(), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(repeat.Headers.GetValues("X-LlmStream-Task-Id").Single(), Is.EqualTo(taskId));
        var body = await repeat.Content.ReadAsStringAsync();
        Assert.That(body, Does.Not.Contain("\"error\""), body);
        var text = string.Concat(body.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement.GetProperty("choices")[0].GetProperty("delta"))
            .Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : ""));
        Assert.That(text, Is.EqualTo(answer));
        Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(30))).GetProperty("status").GetString(), Is.EqualTo("completed"));
    }

    async Task<long> DeadLetteredOnDefaultQueue()
    {
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        var queue = stats.GetProperty("queues").EnumerateArray().Single(q => q.GetProperty("name").GetString() == "default");
        return queue.TryGetProperty("dead_lettered", out var dead) ? dead.GetInt64() : 0;
    }

    [Test]
    public async Task A_poison_message_goes_to_the_dead_letters_with_the_reason()
    {
        if (broker == "inmemory")
            Assert.Ignore("nothing outside the process can put a message on an in-memory bus");
        var deadBefore = await DeadLetters();
        await SendPoison();
        await WaitFor(async () => await DeadLetters() == deadBefore + 1, "the poison message reaches the dead letters");
        if (broker == "redis")
        {
            await using var redis = await _cluster.Redis.ConnectAsync();
            var dead = await redis.GetDatabase().StreamRangeAsync(RedisWorkQueue.DeadLetters, "-", "+");
            Assert.That(dead.Last()["error"].ToString(), Does.StartWith("undecodable message"));
        }
        // And the worker goes on working.
        var (taskId, _) = await _cluster.PostChatAsync(_http, new { message = "after the poison" });
        Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));
    }

    [Test]
    public async Task A_generation_over_the_time_limit_ends_with_one_error_event()
    {
        _cluster.Provider.Behavior.HangNext();
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = "never answered" });
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
        Assert.That(events.Last().Event, Is.EqualTo("error"));
        Assert.That(StreamText.DataOf(events.Last()).GetProperty("error").GetString(), Does.Contain("time limit of 3 s"));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(10));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"));
    }

    async Task<long> DeadLetters()
    {
        if (broker == "rabbitmq")
        {
            var depths = await RabbitMqServer.QueueDepthsAsync(_cluster.RabbitMqUrl, "high_error", "default_error", "low_error");
            return depths.Values.Sum(v => v);
        }
        if (broker == "redis")
        {
            await using var redis = await _cluster.Redis.ConnectAsync();
            return await redis.GetDatabase().StreamLengthAsync(RedisWorkQueue.DeadLetters);
        }
        return 0;
    }

    async Task SendPoison()
    {
        if (broker == "rabbitmq")
        {
            await using var connection = await RabbitMqServer.ConnectAsync(_cluster.RabbitMqUrl);
            await using var channel = await connection.CreateChannelAsync();
            var properties = new RabbitMQ.Client.BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = Guid.NewGuid().ToString() };
            await channel.BasicPublishAsync("default", "", mandatory: false, properties, Encoding.UTF8.GetBytes("{ this is not a message"));
        }
        else
        {
            await using var redis = await _cluster.Redis.ConnectAsync();
            await redis.GetDatabase().StreamAddAsync(RedisWorkQueue.StreamKey("default"),
            [
                new NameValueEntry("id", Guid.NewGuid().ToString("N")),
                new NameValueEntry("type", "LlmStream.Contracts.ChatRequested"),
                new NameValueEntry("body", "{ this is not a message"),
            ]);
            await redis.GetSubscriber().PublishAsync(RedisChannel.Literal("llmstream:queue-wake"), "default");
        }
    }

    static async Task WaitFor(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting until {what}");
            await Task.Delay(100);
        }
    }
}
