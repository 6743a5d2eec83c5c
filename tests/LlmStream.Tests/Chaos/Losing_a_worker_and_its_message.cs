using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// A worker dies mid-generation and the broker loses its message too (purged from the queue it went back to): no
/// worker will ever finish the task. The gateway finds it through the heartbeats and ends it with one error event once
/// the worker has been gone for ORPHAN_GRACE_SECONDS. A message delivered again within that time wins instead.
/// </summary>
public sealed class Losing_a_worker_and_its_message
{
    static Dictionary<string, string> Settings() => new()
    {
        ["CHAT_CONCURRENCY"] = "1",
        ["HEARTBEAT_SECONDS"] = "1",
        ["ORPHAN_GRACE_SECONDS"] = "4",
    };

    [Test]
    public async Task Ends_the_task_with_one_error_after_the_grace_period()
    {
        await using var cluster = await Cluster.StartAsync("orphan", workers: 1, settings: Settings());
        using var http = cluster.Client();
        cluster.Provider.Behavior.HangNext();
        var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message = "lost with my worker" });
        await Stopping_a_chat_worker.Until(() => cluster.Provider.Behavior.ChatRequests == 1, cluster);

        var killed = System.Diagnostics.Stopwatch.StartNew();
        cluster.Workers[0].Kill();
        // RabbitMQ puts the unacknowledged message back in its queue when the connection drops; then it is lost.
        await Stopping_a_chat_worker.Until(() => RabbitMqServer.QueueDepthsAsync(cluster.RabbitMqUrl, "default").Result["default"] == 1, cluster);
        await RabbitMqServer.PurgeAsync(cluster.RabbitMqUrl, "default");

        var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
        TestContext.Progress.WriteLine($"the orphaned task ended {killed.Elapsed.TotalSeconds:0.0} s after its worker was killed (ORPHAN_GRACE_SECONDS=4)");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"), cluster.Logs());
        Assert.That(status.GetProperty("error_code").GetString(), Is.EqualTo("worker_lost"));
        Assert.That(status.GetProperty("error").GetString(), Does.Contain("ORPHAN_GRACE_SECONDS"));
        var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(10));
        Assert.That(events.Select(e => e.Event), Is.EqualTo(new[] { "queued", "started", "error" }));
    }

    [Test]
    public async Task Leaves_a_task_whose_message_was_delivered_again_to_its_new_worker()
    {
        await using var cluster = await Cluster.StartAsync("orphan-redelivered", workers: 1, settings: Settings());
        using var http = cluster.Client();
        cluster.Provider.Behavior.HangNext();
        var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message = "picked up again" });
        await Stopping_a_chat_worker.Until(() => cluster.Provider.Behavior.ChatRequests == 1, cluster);

        cluster.Workers[0].Kill();
        // The next worker comes up after the grace period has passed for the dead one: the redelivery started the task
        // again under the new worker, so it is not an orphan.
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(800);
        await cluster.StartWorkerAsync();
        var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), cluster.Logs());
        Assert.That(status.GetProperty("attempt").GetInt32(), Is.EqualTo(2));
        var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(10));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        Assert.That(cluster.Gateway!.Output, Does.Not.Contain("no redelivery started it again"));
    }
}
