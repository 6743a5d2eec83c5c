using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Gateway;

/// <summary>Finished streams and task records stay readable for RESULT_TTL, then expire.</summary>
public sealed class Stream_retention
{
    [Test]
    public async Task A_finished_stream_is_readable_until_the_retention_ends_then_gone()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "0", ["RESULT_TTL"] = "2" });
        using var http = factory.CreateClient();
        var accepted = await (await http.PostAsJsonAsync("/chat", new { message = "short-lived" })).Content.ReadFromJsonAsync<JsonElement>();
        var sessionId = accepted.GetProperty("session_id").GetString();
        var taskId = accepted.GetProperty("task_id").GetString();

        var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
        Assert.That((await http.GetAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.That((await http.GetAsync($"/stream/{sessionId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((await http.GetAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }
}
