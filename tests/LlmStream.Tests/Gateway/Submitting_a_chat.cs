using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Providers;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Gateway;

/// <summary>make run's configuration: one process, in-memory bus, in-process streams, simulated model.</summary>
public sealed class Submitting_a_chat
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "0" });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    [Test]
    public async Task Answers_at_once_with_ids_and_streams_the_whole_answer()
    {
        var response = await _http.PostAsJsonAsync("/chat", new { message = "embedded mode", priority = -7 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var taskId = accepted.GetProperty("task_id").GetString()!;
        var sessionId = accepted.GetProperty("session_id").GetString()!;
        Assert.That(accepted.GetProperty("status").GetString(), Is.EqualTo("queued"));
        Assert.That(accepted.GetProperty("queue").GetString(), Is.EqualTo("low"));
        Assert.That(accepted.GetProperty("stream_url").GetString(), Is.EqualTo($"/stream/{sessionId}"));
        Assert.That(response.Headers.Location!.ToString(), Is.EqualTo($"/chat/{taskId}"));
        Assert.That(taskId, Does.Match("^[0-9a-f]{32}$"), "128 random bits");

        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(events.First().Event, Is.EqualTo("queued"));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
        Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens("embedded mode"))));
        Assert.That(events.All(e => e.Id is not null), Is.True, "every event has an id to resume from");

        var status = await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(StreamText.Of(events, taskId)));
        Assert.That(status.GetProperty("priority").GetInt32(), Is.EqualTo(-7));
    }

    [Test]
    public async Task Resumes_after_the_last_event_id_without_repeating_anything()
    {
        var accepted = await (await _http.PostAsJsonAsync("/chat", new { message = "resume me" })).Content.ReadFromJsonAsync<JsonElement>();
        var sessionId = accepted.GetProperty("session_id").GetString()!;
        var all = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        var cut = all.Count / 2;

        var rest = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30), lastEventId: all[cut].Id);
        Assert.That(rest.Select(e => e.Id), Is.EqualTo(all.Skip(cut + 1).Select(e => e.Id)));
        var viaQuery = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}?last_event_id={all[cut].Id}", TimeSpan.FromSeconds(30));
        Assert.That(viaQuery.Select(e => e.Id), Is.EqualTo(rest.Select(e => e.Id)));
        var afterEnd = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30), lastEventId: all[^1].Id);
        Assert.That(afterEnd, Is.Empty, "resuming after the terminal event ends at once");
    }

    [Test]
    public async Task Reports_unknown_tasks_and_sessions_as_problems()
    {
        var task = await _http.GetAsync("/chat/0123456789abcdef0123456789abcdef");
        Assert.That(task.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(task.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        var stream = await _http.GetAsync("/stream/nobody");
        Assert.That(stream.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(stream.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
    }

    [Test]
    public async Task Rejects_a_last_event_id_that_is_not_an_entry_id()
    {
        var accepted = await (await _http.PostAsJsonAsync("/chat", new { message = "x" })).Content.ReadFromJsonAsync<JsonElement>();
        var response = await _http.GetAsync($"/stream/{accepted.GetProperty("session_id").GetString()}?last_event_id=yesterday");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(problem.GetProperty("field").GetString(), Is.EqualTo("last_event_id"));
        var future = await _http.GetAsync($"/stream/{accepted.GetProperty("session_id").GetString()}?last_event_id=99999999999999-0");
        Assert.That(future.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), "an id after the newest event did not come from this stream");
    }

    [Test]
    public async Task Serves_the_openapi_document_the_docs_page_and_health()
    {
        var openApi = await _http.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = openApi.GetProperty("paths");
        Assert.That(paths.TryGetProperty("/chat", out _), Is.True);
        Assert.That(paths.TryGetProperty("/chat/{task_id}", out _), Is.True);
        Assert.That(paths.TryGetProperty("/stream/{session_id}", out _), Is.True);
        var docs = await _http.GetAsync("/docs/");
        Assert.That(docs.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await docs.Content.ReadAsStringAsync(), Does.Contain("LlmStream API"));
        Assert.That((await _http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }
}
