using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>1,000 SSE connections open at once on one gateway process, all served to the end.</summary>
public sealed class Many_connections
{
    const int Sessions = 50;
    const int SubscribersPerSession = 20;

    [Test]
    public async Task A_thousand_concurrent_streams_on_one_gateway_each_get_the_whole_answer()
    {
        await using var cluster = await Cluster.StartAsync("many", settings: new Dictionary<string, string> { ["CHAT_CONCURRENCY"] = "64" });
        using var http = cluster.Client();
        var reply = string.Join(' ', Enumerable.Range(1, 20).Select(i => $"m{i}"));
        cluster.Provider.Behavior.Reply = _ => reply;
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(200); // ~4 s per answer: all connections overlap

        var tasks = new List<(string TaskId, string SessionId)>();
        for (var i = 0; i < Sessions; i++)
            tasks.Add(await cluster.PostChatAsync(http, new { message = $"many {i}" }));

        var connected = 0;
        var finishedBeforeAllConnected = 0;
        var readers = tasks.SelectMany(t => Enumerable.Range(0, SubscribersPerSession).Select(async _ =>
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            using var response = await http.GetAsync($"/stream/{t.SessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            response.EnsureSuccessStatusCode();
            Interlocked.Increment(ref connected);
            var events = new List<SseEvent>();
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
                events.Add(e);
            if (Volatile.Read(ref connected) < Sessions * SubscribersPerSession)
                Interlocked.Increment(ref finishedBeforeAllConnected);
            return (t.TaskId, Events: events);
        })).ToList();

        var results = await Task.WhenAll(readers);
        Assert.That(results, Has.Length.EqualTo(1000));
        Assert.That(finishedBeforeAllConnected, Is.Zero, "all 1,000 streams were open at the same time");
        foreach (var (taskId, events) in results)
        {
            Assert.That(StreamText.Of(events, taskId), Is.EqualTo(reply));
            Assert.That(events.Last().Event, Is.EqualTo("done"));
        }
    }
}
