using LlmStream.Messaging.RedisStreams;
using System.Diagnostics;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// BROKER=redis with Redis's append-only file: Redis stopped and started again on the same port and folder. Finished
/// streams read back the same, work waiting in the queue streams is done afterwards, and the gateway and a worker
/// that stayed up through a restart go on working.
/// </summary>
public sealed class Restarting_redis_with_aof
{
    [Test]
    public async Task Streams_and_queued_work_survive_a_restart()
    {
        await using var cluster = await Cluster.StartAsync("chaos-aof", workers: 1, broker: "redis", redisAppendOnly: true, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "8",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        cluster.Provider.Behavior.Reply = message => $"reply to {message}: alpha beta gamma delta epsilon";
        static string Expected(string message) => $"reply to {message}: alpha beta gamma delta epsilon";
        var clock = Stopwatch.StartNew();

        // Finished before the restart.
        var finished = new List<(string TaskId, string SessionId, string Message, List<SseEvent> Events)>();
        for (var i = 0; i < 5; i++)
        {
            var message = $"finished {i}";
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message });
            await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(30));
            finished.Add((taskId, sessionId, message, await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30))));
        }

        // Waiting in the queue streams: no worker runs.
        await cluster.Workers[0].StopAsync();
        var queued = new List<(string TaskId, string SessionId, string Message)>();
        for (var i = 0; i < 10; i++)
        {
            var message = $"queued {i}";
            var priority = (i % 3 - 1) * 8; // -8, 0, 8: each queue stream has some
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message, priority });
            queued.Add((taskId, sessionId, message));
        }
        long waitingBefore;
        await using (var redis = await cluster.Redis.ConnectAsync())
            waitingBefore = await QueueLength(redis);
        Assert.That(waitingBefore, Is.EqualTo(10), "ten messages wait in the queue streams");

        await cluster.Redis.RestartAsync(downtime: TimeSpan.FromSeconds(1));
        var firstRestart = clock.Elapsed;
        await using (var redis = await cluster.Redis.ConnectAsync())
            Assert.That(await QueueLength(redis), Is.EqualTo(10), "the queue streams came back from the AOF");

        // The finished streams read back the same, through the gateway that stayed up.
        foreach (var (taskId, sessionId, message, events) in finished)
        {
            var again = await ReadWhenServed(http, sessionId);
            Assert.That(again.Select(e => (e.Id, e.Event, e.Data)), Is.EqualTo(events.Select(e => (e.Id, e.Event, e.Data))), message);
            var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(10));
            Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(Expected(message)));
        }

        // A new worker does the queued work.
        await cluster.StartWorkerAsync();
        foreach (var (taskId, sessionId, message) in queued)
            await AssertCompletedOnce(cluster, http, taskId, sessionId, message, Expected(message));

        // Restart again with the worker up and idle: it and the gateway go on taking work.
        await cluster.Redis.RestartAsync(downtime: TimeSpan.FromSeconds(1));
        var after = new List<(string TaskId, string SessionId, string Message)>();
        for (var i = 0; i < 5; i++)
        {
            var message = $"after {i}";
            var (taskId, sessionId) = await PostWhenServed(cluster, http, message);
            after.Add((taskId, sessionId, message));
        }
        foreach (var (taskId, sessionId, message) in after)
            await AssertCompletedOnce(cluster, http, taskId, sessionId, message, Expected(message));
        foreach (var (taskId, sessionId, message, events) in finished.Take(2))
            Assert.That((await ReadWhenServed(http, sessionId)).Select(e => e.Id), Is.EqualTo(events.Select(e => e.Id)), "still there after the second restart");

        TestContext.Progress.WriteLine(
            $"Redis AOF restarts: 5 finished streams read back identical after each restart, {waitingBefore} queued messages survived and completed " +
            $"on a worker started after the first restart; after a second restart the same worker and gateway completed 5 more; {clock.Elapsed.TotalSeconds:0} s " +
            $"(first restart done at {firstRestart.TotalSeconds:0.0} s)");
    }

    static async Task<long> QueueLength(StackExchange.Redis.ConnectionMultiplexer redis)
    {
        var db = redis.GetDatabase();
        long total = 0;
        foreach (var queue in new[] { "high", "default", "low" })
            total += await db.StreamLengthAsync(RedisWorkQueue.StreamKey(queue));
        return total;
    }

    /// <summary>The gateway's connection to Redis comes back by itself within a few seconds; until then a read may fail.</summary>
    static async Task<List<SseEvent>> ReadWhenServed(HttpClient http, string sessionId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                return await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    static async Task<(string TaskId, string SessionId)> PostWhenServed(Cluster cluster, HttpClient http, string message)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                return await cluster.PostChatAsync(http, new { message });
            }
            catch (InvalidOperationException e) when (e.Message.Contains("503", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200); // Retry-After, shortened
            }
        }
    }

    static async Task AssertCompletedOnce(Cluster cluster, HttpClient http, string taskId, string sessionId, string message, string expected)
    {
        var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        var context = $"{message}: {string.Join(" ", events.Select(e => e.Event))}";
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), context);
        Assert.That(events[0].Event, Is.EqualTo("queued"), context);
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(expected), context);
    }
}
