using System.Net;
using System.Text.Json;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// RabbitMQ stopped and started again while clients post chats at a steady rate (its own node: the shared one serves
/// other scenarios). While it is down POST /chat answers 503 with Retry-After and a problem; every request that got
/// a 202 completes once, and nothing a 503 refused ever reaches the model.
/// </summary>
public sealed class Restarting_rabbitmq_under_load
{
    [Test]
    public async Task Answers_503_with_retry_after_while_down_and_loses_no_accepted_request()
    {
        await using var rabbitMq = await RabbitMqServer.StartAsync();
        await using var cluster = await Cluster.StartAsync("chaos-rmq", workers: 2, rabbitMq: rabbitMq, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "8",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        http.Timeout = TimeSpan.FromSeconds(60);
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(30);
        cluster.Provider.Behavior.Reply = message => $"answer to {message}: one two three four five six seven eight";

        var load = new SteadyChats(cluster, http);
        var posts = load.Posts;
        var clock = load.Clock;

        var before = clock.Elapsed;
        await load.PostUntilAsync(() => clock.Elapsed - before > TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10), "load before the stop");

        var stopping = clock.Elapsed;
        var stop = rabbitMq.StopAsync();
        await load.PostUntilAsync(() => stop.IsCompleted, TimeSpan.FromSeconds(60), "RabbitMQ stopped");
        await stop;
        var stopped = clock.Elapsed;
        int Refused() => posts.Count(p => p.Status == HttpStatusCode.ServiceUnavailable);
        await load.PostUntilAsync(() => Refused() >= 5 && clock.Elapsed - stopped > TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(40), "503s while down");

        var starting = clock.Elapsed;
        var start = rabbitMq.StartAgainAsync();
        await load.PostUntilAsync(() => start.IsCompleted, TimeSpan.FromSeconds(90), "RabbitMQ started again");
        await start;
        var started = clock.Elapsed;
        bool AcceptedAgain() => posts.Count(p => p.At > started && p.Status == HttpStatusCode.Accepted) >= 10;
        await load.PostUntilAsync(AcceptedAgain, TimeSpan.FromSeconds(60), "202s after the restart");
        await load.AnsweredAsync();

        var all = posts.OrderBy(p => p.At).ToList();
        var accepted = all.Where(p => p.Status == HttpStatusCode.Accepted).ToList();
        var refused = all.Where(p => p.Status == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.That(all.Where(p => p.Status is not (HttpStatusCode.Accepted or HttpStatusCode.ServiceUnavailable)).Select(p => $"{(int)p.Status} {p.Body}"),
            Is.Empty, "every POST was accepted or refused with 503");
        Assert.That(refused, Has.Count.GreaterThanOrEqualTo(5), "the outage was seen by clients");
        foreach (var p in refused)
        {
            Assert.That(p.RetryAfter, Is.Not.Null.And.Not.Empty, $"503 without Retry-After: {p.Body}");
            Assert.That(p.ContentType, Is.EqualTo("application/problem+json"), p.Body);
            Assert.That(JsonDocument.Parse(p.Body).RootElement.GetProperty("detail").GetString(), Does.Contain("broker"), p.Body);
        }

        var firstRefusal = refused.Min(p => p.At);
        var lastRefusal = refused.Max(p => p.At);
        foreach (var p in accepted)
        {
            var status = await cluster.WaitForEndAsync(http, p.TaskId!, TimeSpan.FromSeconds(90));
            var events = await SseClient.ReadAllAsync(http, $"/stream/{p.SessionId}", TimeSpan.FromSeconds(30));
            var expected = $"answer to {p.Message}: one two three four five six seven eight";
            var context = $"{p.Message} (posted at {p.At.TotalSeconds:0.0} s): {string.Join(" ", events.Select(e => e.Event))}";
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), context);
            Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(expected), context);
            Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
            Assert.That(StreamText.Of(events, p.TaskId!), Is.EqualTo(expected), context);
        }

        // A refused request is not half-queued: the model never hears of it.
        var asked = cluster.Provider.Behavior.Requests.Select(r => r.Messages.Last().Content).ToHashSet();
        Assert.That(refused.Select(p => p.Message).Where(asked.Contains), Is.Empty, "a 503'd request reached the model");
        Assert.That(accepted.Select(p => p.Message).Where(m => !asked.Contains(m)), Is.Empty);

        TestContext.Progress.WriteLine(
            $"RabbitMQ restart: {all.Count} POSTs at 10/s; stop took {(stopped - stopping).TotalSeconds:0.0} s, start {(started - starting).TotalSeconds:0.0} s; " +
            $"{accepted.Count} accepted (all completed, one terminal event each), {refused.Count} refused with 503 + Retry-After " +
            $"between {firstRefusal.TotalSeconds:0.0} s and {lastRefusal.TotalSeconds:0.0} s (stop began at {stopping.TotalSeconds:0.0} s, node back at {started.TotalSeconds:0.0} s); " +
            $"accepted again from {accepted.Where(p => p.At > lastRefusal).Select(p => p.At.TotalSeconds).DefaultIfEmpty(double.NaN).Min():0.0} s; " +
            $"{cluster.Provider.Behavior.ChatRequests} provider calls for {accepted.Count} tasks; {clock.Elapsed.TotalSeconds:0} s");
    }
}
