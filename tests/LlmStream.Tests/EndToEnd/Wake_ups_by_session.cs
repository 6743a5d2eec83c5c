using System.Globalization;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Two gateways over a Redis Cluster of three masters, each with a reader of its own chat: a gateway's wake-ups carry
/// the token events of the sessions its readers follow and none of the other's (per-session channels, sharded pub/sub).
/// </summary>
public sealed class Wake_ups_by_session
{
    [Test]
    public async Task A_gateway_receives_only_the_tokens_of_its_own_readers()
    {
        const int Tokens = 60;
        await using var cluster = await Cluster.StartAsync("wake-by-session", redisMasters: 3, settings: new Dictionary<string, string>
        {
            ["LLM_RPM"] = "0",
            ["LLM_TPM"] = "0",
        });
        await cluster.StartGatewayAsync();
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(10);
        cluster.Provider.Behavior.Reply = message => string.Join(' ', Enumerable.Range(0, Tokens).Select(i => $"{message}-{i}"));
        using var first = cluster.Client(0);
        using var second = cluster.Client(1);

        async Task<string> Follow(HttpClient http, string message)
        {
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message });
            var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
            return StreamText.Of(events, taskId);
        }
        var texts = await Task.WhenAll(Follow(first, "a"), Follow(second, "b"));
        Assert.That(texts[0], Is.EqualTo(string.Join(' ', Enumerable.Range(0, Tokens).Select(i => $"a-{i}"))));
        Assert.That(texts[1], Is.EqualTo(string.Join(' ', Enumerable.Range(0, Tokens).Select(i => $"b-{i}"))));

        foreach (var (http, name) in new[] { (first, "first"), (second, "second") })
        {
            var carried = PrometheusText.Sum(await http.GetStringAsync("/metrics"), "llmstream_wake_token_events_total");
            // Tokens written before the reader subscribed are read from the stream instead; never the other session's.
            Assert.That(carried, Is.InRange(1, Tokens), $"token events the {name} gateway's wake-ups carried ({carried.ToString(CultureInfo.InvariantCulture)})");
        }
    }
}
