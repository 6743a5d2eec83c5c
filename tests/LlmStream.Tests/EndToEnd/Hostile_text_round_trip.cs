using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Text that would break a naive SSE writer or JSON encoder (blank lines, "data:" and "event:" lines, CR, NUL and
/// other control characters, line and paragraph separators, astral characters) goes to the provider and comes back
/// through the worker, the Redis stream and SSE exactly as it was: in /stream tokens, in the task's result, and in
/// /v1 streaming chunks.
/// </summary>
public sealed class Hostile_text_round_trip
{
    Cluster _cluster = null!;
    HttpClient _http = null!;

    static readonly string Hostile = string.Concat(
        "first line\n\ndata: {\"fake\":true}\n\nevent: done\r\nid: 1-0\r\r",
        "retry: 1\n: comment\n", "nul\u0000bell\u0007esc\u001b del\u007f", "\u2028\u2029\u0085",
        " tab\t quote\" backslash\\ slash/ <b>bold</b> &amp; ", "é ß 中文 💩🎉 \U0001F9EA ",
        "end\n");

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("hostile-text");
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [TestCase(1)]
    [TestCase(3)]
    public async Task Comes_back_through_the_stream_byte_exact(int tokensPerChunk)
    {
        _cluster.Provider.Behavior.ChunkSize = tokensPerChunk;
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = Hostile });
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60));
        var expected = "Echo: " + Hostile;

        Assert.That(_cluster.Provider.Behavior.Requests.Last().Messages.Last().Content, Is.EqualTo(Hostile), "the provider got the text as sent");
        Assert.That(Encoding.UTF8.GetBytes(status.GetProperty("result").GetString()!), Is.EqualTo(Encoding.UTF8.GetBytes(expected)));
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.Select(e => e.Event), Does.Not.Contain("error"));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), "no injected event was taken for a real one");
        Assert.That(Encoding.UTF8.GetBytes(StreamText.Of(events, taskId)), Is.EqualTo(Encoding.UTF8.GetBytes(expected)));
    }

    [Test]
    public async Task Comes_back_through_openai_streaming_chunks_byte_exact()
    {
        _cluster.Provider.Behavior.ChunkSize = 2;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-4o-mini", stream = true, messages = new[] { new { role = "user", content = Hostile } } }),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();
        var text = new StringBuilder();
        foreach (var line in body.Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
                continue;
            using var chunk = JsonDocument.Parse(line["data: ".Length..]);
            foreach (var choice in chunk.RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.GetProperty("delta").TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    text.Append(content.GetString());
            }
        }
        Assert.That(body.TrimEnd().EndsWith("data: [DONE]", StringComparison.Ordinal), Is.True, body);
        Assert.That(Encoding.UTF8.GetBytes(text.ToString()), Is.EqualTo(Encoding.UTF8.GetBytes("Echo: " + Hostile)));
    }
}
