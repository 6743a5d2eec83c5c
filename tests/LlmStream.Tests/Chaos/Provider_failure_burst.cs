using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// A burst of provider failures across concurrent tasks on two workers (RabbitMQ): 429s with Retry-After, 500s and a
/// call that never answers. Every task ends with exactly one terminal event: the retried ones complete with their whole
/// answer, the hung one fails at the time limit with a readable reason, and each failure cost exactly one more call.
/// </summary>
public sealed class Provider_failure_burst
{
    const int Tasks = 10;
    const int RateLimited = 6;
    const int ServerErrors = 3;

    [Test]
    public async Task Every_task_ends_once_with_a_clear_outcome()
    {
        await using var cluster = await Cluster.StartAsync("chaos-provider", workers: 2, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "4",
            ["RETRY_LIMIT"] = "10",
            ["RETRY_BASE_MS"] = "100",
            ["LLM_TIMEOUT"] = "3",
        });
        using var http = cluster.Client();
        var behavior = cluster.Provider.Behavior;
        behavior.TokenDelay = TimeSpan.FromMilliseconds(20);
        behavior.Reply = message => $"{message} answered in full after the storm";
        behavior.FailNext(429, count: RateLimited, retryAfter: TimeSpan.FromSeconds(1), message: "Rate limit reached");
        behavior.FailNext(500, count: ServerErrors, message: "upstream exploded");
        behavior.HangNext();

        var posted = new List<(string TaskId, string SessionId, string Message)>();
        for (var i = 0; i < Tasks; i++)
        {
            var message = $"storm {i}";
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message });
            posted.Add((taskId, sessionId, message));
        }

        var completed = 0;
        var failed = new List<string>();
        foreach (var (taskId, sessionId, message) in posted)
        {
            var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(90));
            var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
            var context = $"{message}: {string.Join(" ", events.Select(e => e.Event))}";
            Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
            if (status.GetProperty("status").GetString() == "completed")
            {
                completed++;
                Assert.That(events[^1].Event, Is.EqualTo("done"), context);
                Assert.That(StreamText.Of(events, taskId), Is.EqualTo($"{message} answered in full after the storm"), context);
                Assert.That(status.GetProperty("result").GetString(), Is.EqualTo($"{message} answered in full after the storm"), context);
            }
            else
            {
                Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"), context);
                Assert.That(events[^1].Event, Is.EqualTo("error"), context);
                var error = StreamText.DataOf(events[^1]).GetProperty("error").GetString();
                Assert.That(error, Does.Contain("time limit of 3 s"), context);
                failed.Add(error!);
            }
        }

        Assert.That(completed, Is.EqualTo(Tasks - 1), "every task but the hung one completed");
        Assert.That(failed, Has.Count.EqualTo(1), "the hung call failed its task at the time limit");
        Assert.That(behavior.PendingScripts, Is.Zero);
        Assert.That(behavior.ChatRequests, Is.EqualTo(Tasks + RateLimited + ServerErrors), "each transient failure cost one more call, no more");
        var requests = behavior.Requests;
        var firstLimited = requests[0].ReceivedAt;
        TestContext.Progress.WriteLine(
            $"provider storm: {Tasks} tasks on 2 workers, {RateLimited} × 429 (Retry-After 1 s), {ServerErrors} × 500, 1 hung call: " +
            $"{completed} completed with their whole answer, 1 failed with \"{failed[0]}\"; {behavior.ChatRequests} provider calls; " +
            $"calls in the second after the first 429: {requests.Count(r => r.ReceivedAt > firstLimited.AddMilliseconds(200) && r.ReceivedAt < firstLimited.AddSeconds(1))}");
    }
}
