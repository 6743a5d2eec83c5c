using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using LlmStream.Sessions;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// A Redis Cluster of three masters with a replica each holds the tasks and streams (REDIS_WAIT_REPLICAS=1); chats are
/// posted at ten a second and every accepted one is followed over SSE by a client that resumes with Last-Event-ID when
/// its stream breaks; then kill -9 of the master holding the most streams in flight. Its replica takes over. Counted:
/// accepted tasks lost, events a client missed (its text against the task's result) and events it got twice; asserted
/// what README promises: no accepted task lost, no event twice, one terminal event each.
/// </summary>
public sealed class Losing_a_redis_master
{
    [Test]
    public async Task No_accepted_task_is_lost_and_no_event_repeats_when_a_master_dies()
    {
        await using var cluster = await Cluster.StartAsync("lose-master", workers: 2, redisMasters: 3, redisReplicas: 1, settings: new Dictionary<string, string>
        {
            ["REDIS_WAIT_REPLICAS"] = "1",
            ["SSE_KEEPALIVE_SECONDS"] = "1",
            ["CHAT_CONCURRENCY"] = "8",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        using var http = cluster.Client();
        http.Timeout = TimeSpan.FromSeconds(60);
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(40);
        var words = string.Join(' ', Enumerable.Range(1, 30).Select(i => $"w{i}"));
        cluster.Provider.Behavior.Reply = message => $"{message}: {words}";

        var followers = new ConcurrentDictionary<string, Task<List<SseEvent>>>();
        var load = new SteadyChats(cluster, http, "chat") { OnAccepted = p => followers[p.TaskId!] = Follow(cluster.Client(), p.SessionId!) };
        var posts = load.Posts;
        var clock = load.Clock;

        // One chat end to end first: the first requests of a fresh gateway and worker warm up their paths.
        var (warmUp, _) = await cluster.PostChatAsync(http, new { message = "warm-up" });
        await cluster.WaitForEndAsync(http, warmUp, TimeSpan.FromSeconds(60));
        await load.PostForAsync(TimeSpan.FromSeconds(3));
        // The master whose shards hold the most sessions still streaming.
        await using var redis = await cluster.ConnectRedisAsync();
        var started = posts.Where(p => p.SessionId is not null).ToList();
        Assert.That(started, Is.Not.Empty, $"nothing accepted before the kill: {string.Join(", ", posts.Select(p => (int)p.Status))}\n{cluster.Logs()}");
        var streaming = started.Where(p => !followers[p.TaskId!].IsCompleted).Select(p => p.SessionId!).ToList();
        var byMaster = new Dictionary<RedisCluster.Node, int>();
        // The sessions still streaming; on a machine so loaded that none is, those accepted so far.
        foreach (var session in streaming.Count > 0 ? streaming : started.Select(p => p.SessionId!))
        {
            var master = await cluster.RedisCluster!.MasterOfAsync(redis.HashSlot(SessionShards.TagOf(session)));
            byMaster[master] = byMaster.GetValueOrDefault(master) + 1;
        }
        var victim = byMaster.MaxBy(m => m.Value);
        var killedAt = clock.Elapsed;
        cluster.RedisCluster!.Kill(victim.Key);
        var posting = load.PostForAsync(TimeSpan.FromSeconds(10));
        await cluster.RedisCluster.WaitUntilHealthyAsync(TimeSpan.FromSeconds(30));
        var healedAt = clock.Elapsed;
        await posting;
        await load.AnsweredAsync();

        var accepted = posts.Where(p => p.Status == HttpStatusCode.Accepted).OrderBy(p => p.At).ToList();
        var refused = posts.Where(p => p.Status != HttpStatusCode.Accepted).ToList();
        Assert.That(refused.Where(p => p.Status != HttpStatusCode.ServiceUnavailable).Select(p => $"{(int)p.Status} {p.Message}"), Is.Empty,
            "a POST was accepted, or refused with 503");
        var (lost, missed, repeated, terminalWrong) = (new List<string>(), 0, 0, new List<string>());
        foreach (var p in accepted)
        {
            JsonElement status;
            try
            {
                status = await cluster.WaitForEndAsync(http, p.TaskId!, TimeSpan.FromSeconds(60));
            }
            catch (HttpRequestException e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                lost.Add(p.Message);
                continue;
            }
            var events = await followers[p.TaskId!];
            var expected = $"{p.Message}: {words}";
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), p.Message);
            Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(expected), p.Message);
            repeated += events.Count - events.Select(e => e.Id).Distinct().Count();
            if (events.Count(e => e.Event is "done" or "error" or "cancelled") != 1)
                terminalWrong.Add($"{p.Message}: {string.Join(" ", events.Select(e => e.Event))}");
            var seen = StreamText.Of(events, p.TaskId!);
            if (seen != expected)
                missed += expected.Split(' ').Length - seen.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        }

        TestContext.Progress.WriteLine(
            $"Redis master lost (3 masters + 3 replicas, REDIS_WAIT_REPLICAS=1): killed {victim.Key.Address}, which held {victim.Value} of {streaming.Count} streams in flight; " +
            $"cluster healthy again {(healedAt - killedAt).TotalSeconds:0.0} s later. {posts.Count} POSTs at 10/s: {accepted.Count} accepted, {refused.Count} refused with 503" +
            (refused.Count > 0 ? $" (from {(refused.Min(p => p.At) - killedAt).TotalSeconds:+0.0;-0.0} s to {(refused.Max(p => p.At) - killedAt).TotalSeconds:+0.0;-0.0} s after the kill)" : "") +
            $"; accepted tasks lost: {lost.Count}; tokens a client missed: {missed}; events a client got twice: {repeated}; {clock.Elapsed.TotalSeconds:0} s");
        TestContext.Progress.WriteLine(string.Join("\n", cluster.Gateway!.Output.Split('\n').Where(l => l.Contains("available again", StringComparison.Ordinal)).Select(l => l[..Math.Min(l.Length, 160)])));
        Assert.That(lost, Is.Empty, "accepted tasks lost");
        Assert.That(repeated, Is.Zero, "events a client got twice");
        Assert.That(terminalWrong, Is.Empty, "streams without exactly one terminal event");
    }

    /// <summary>A client reading a session's stream to its terminal event, resuming with Last-Event-ID whenever the stream breaks.</summary>
    static async Task<List<SseEvent>> Follow(HttpClient http, string sessionId)
    {
        using var _ = http;
        var events = new List<SseEvent>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/stream/{sessionId}");
                if (events.LastOrDefault()?.Id is { } last)
                    request.Headers.Add("Last-Event-ID", last);
                using var cut = new CancellationTokenSource(deadline - DateTime.UtcNow);
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cut.Token);
                if (response.IsSuccessStatusCode)
                {
                    await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cut.Token), cut.Token))
                    {
                        events.Add(e);
                        if (e.Event is "done" or "error" or "cancelled")
                            return events;
                    }
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
            {
                // The stream broke (Redis failed over under the gateway): resume after the last event seen.
            }
            await Task.Delay(200);
        }
        return events;
    }
}
