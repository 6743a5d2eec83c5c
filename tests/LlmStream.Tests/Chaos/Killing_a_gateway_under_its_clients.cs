using System.Diagnostics;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// kill -9 of a gateway while SSE clients are connected to it mid-stream: each client reconnects to the other
/// gateway with the id of the last event it saw and gets exactly the rest, no gap and no repeat.
/// </summary>
public sealed class Killing_a_gateway_under_its_clients
{
    const int Clients = 12;
    const int ReplyTokens = 60;

    [Test]
    public async Task Clients_resume_on_another_gateway_with_last_event_id_and_miss_nothing()
    {
        await using var cluster = await Cluster.StartAsync("chaos-gateway", workers: 1, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "16",
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        await cluster.StartGatewayAsync();
        using var doomed = cluster.Client(0);
        using var survivor = cluster.Client(1);
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(40);
        static string Reply(string message) => string.Join(' ', Enumerable.Range(1, ReplyTokens).Select(i => $"{message}:{i}"));
        cluster.Provider.Behavior.Reply = Reply;

        var sessions = new List<(string TaskId, string SessionId, string Message)>();
        for (var i = 0; i < Clients; i++)
        {
            var message = $"client{i}";
            var (taskId, sessionId) = await cluster.PostChatAsync(doomed, new { message });
            sessions.Add((taskId, sessionId, message));
        }

        var seen = sessions.Select(_ => new List<SseEvent>()).ToArray();
        var cutOff = new bool[Clients];
        var readers = sessions.Select((s, i) => Task.Run(async () =>
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                using var response = await doomed.GetAsync($"/stream/{s.SessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
                await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
                {
                    lock (seen[i])
                        seen[i].Add(e);
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                cutOff[i] = true; // the gateway died under the connection
            }
        })).ToList();

        int Tokens(int i) { lock (seen[i]) return seen[i].Count(e => e.Event == "token"); }
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Enumerable.Range(0, Clients).Any(i => Tokens(i) < 5))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"every client streams from the first gateway\n{cluster.Logs()}");
            await Task.Delay(10);
        }
        var clock = Stopwatch.StartNew();
        cluster.Gateways[0].Kill();
        await Task.WhenAll(readers);
        var cutAt = Enumerable.Range(0, Clients).Select(Tokens).ToList();

        var resumed = await Task.WhenAll(sessions.Select((s, i) =>
            SseClient.ReadAllAsync(survivor, $"/stream/{s.SessionId}", TimeSpan.FromSeconds(60), lastEventId: seen[i][^1].Id)));
        var resumedIn = clock.Elapsed;

        for (var i = 0; i < Clients; i++)
        {
            var (taskId, sessionId, message) = sessions[i];
            var everything = await SseClient.ReadAllAsync(survivor, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
            var joined = seen[i].Concat(resumed[i]).ToList();
            var context = $"client {i}: cut off after {cutAt[i]} tokens, resumed with {resumed[i].Count} events";
            Assert.That(cutOff[i] || seen[i][^1].Event == "done", Is.True, context);
            Assert.That(joined.Select(e => e.Id), Is.EqualTo(everything.Select(e => e.Id)), $"{context}: no gap, no repeat");
            Assert.That(joined.Select(e => e.Data), Is.EqualTo(everything.Select(e => e.Data)), context);
            Assert.That(StreamText.Of(joined, taskId), Is.EqualTo(Reply(message)), context);
            Assert.That(joined.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), context);
            Assert.That(joined[^1].Event, Is.EqualTo("done"), context);
        }
        Assert.That(cutOff.Count(c => c), Is.GreaterThan(0), "the kill cut clients off mid-stream");

        TestContext.Progress.WriteLine(
            $"gateway kill -9 with {Clients} SSE clients mid-stream: {cutOff.Count(c => c)} cut off after {cutAt.Min()}–{cutAt.Max()} of {ReplyTokens} tokens; " +
            $"all resumed on the other gateway with Last-Event-ID, 0 events missed, 0 repeated; the resumed reads ended {resumedIn.TotalSeconds:0.0} s after the kill");
    }
}
