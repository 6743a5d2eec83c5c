using System.Net;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// A three-node RabbitMQ cluster with quorum work queues (its own: the spec kills a node), two chat workers and a
/// gateway connected to it by a RABBITMQ_URL naming every node, chats posted at ten a second, and kill -9 of the node
/// that leads the default queue. The queue's followers elect a new leader and the services reconnect to the nodes
/// left; every request that got a 202 ends once with one attempt's whole text, and the window of 503s is measured.
/// </summary>
public sealed class Losing_a_rabbitmq_node
{
    [Test]
    public async Task Every_accepted_chat_ends_once_when_the_leader_of_its_queue_is_killed()
    {
        await using var rabbitMq = await RabbitMqCluster.StartAsync(nodes: 3);
        await using var cluster = await Cluster.StartAsync("lose-node", workers: 2, rabbitMqCluster: rabbitMq, settings: new Dictionary<string, string>
        {
            ["RABBITMQ_QUEUE_TYPE"] = "quorum",
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

        var start = clock.Elapsed;
        await load.PostUntilAsync(() => clock.Elapsed - start > TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10), "load before the kill");
        var leader = await rabbitMq.LeaderOfAsync(cluster.VirtualHost, "default");
        var killedAt = clock.Elapsed;
        await leader.KillAsync();
        bool AcceptedAfterTheKill() => posts.Count(p => p.At > killedAt + TimeSpan.FromSeconds(1) && p.Status == HttpStatusCode.Accepted) >= 20;
        await load.PostUntilAsync(() => AcceptedAfterTheKill() && clock.Elapsed - killedAt > TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(60), "202s after the kill");
        await load.AnsweredAsync();
        var newLeader = await rabbitMq.LeaderOfAsync(cluster.VirtualHost, "default");

        var all = posts.OrderBy(p => p.At).ToList();
        var accepted = all.Where(p => p.Status == HttpStatusCode.Accepted).ToList();
        var refused = all.Where(p => p.Status == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.That(all.Where(p => p.Status is not (HttpStatusCode.Accepted or HttpStatusCode.ServiceUnavailable)).Select(p => $"{(int)p.Status} {p.Body}"),
            Is.Empty, "every POST was accepted or refused with 503");
        Assert.That(refused.Where(p => string.IsNullOrEmpty(p.RetryAfter)).Select(p => p.Body), Is.Empty, "a 503 says when to try again");
        Assert.That(newLeader.NodeName, Is.Not.EqualTo(leader.NodeName), "another node leads the queue");

        foreach (var p in accepted)
        {
            var status = await cluster.WaitForEndAsync(http, p.TaskId!, TimeSpan.FromSeconds(90));
            var events = await SseClient.ReadAllAsync(http, $"/stream/{p.SessionId}", TimeSpan.FromSeconds(30));
            var expected = $"answer to {p.Message}: one two three four five six seven eight";
            var context = $"{p.Message} (posted at {(p.At - killedAt).TotalSeconds:+0.0;-0.0} s from the kill): {string.Join(" ", events.Select(e => e.Event))}";
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), context);
            Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
            Assert.That(StreamText.Of(events, p.TaskId!), Is.EqualTo(expected), context);
        }

        var window = refused.Count == 0 ? "none" : $"from {(refused.Min(p => p.At) - killedAt).TotalSeconds:+0.0} s to {(refused.Max(p => p.At) - killedAt).TotalSeconds:+0.0} s after the kill";
        TestContext.Progress.WriteLine(
            $"RabbitMQ node lost (quorum queues, 3 nodes): killed {leader.NodeName}, which led 'default'; {newLeader.NodeName} leads it now. " +
            $"{all.Count} POSTs at 10/s: {accepted.Count} accepted, all completed once with their whole answer; {refused.Count} refused with 503 ({window}); " +
            $"{cluster.Provider.Behavior.ChatRequests} provider calls for {accepted.Count} tasks; " +
            $"stalled publisher channels reset by the gateway: {cluster.Gateway!.Output.Split('\n').Count(l => l.Contains("their channel was closed", StringComparison.Ordinal))}; {clock.Elapsed.TotalSeconds:0} s");
    }
}
