using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Gateway;

/// <summary>With API_KEYS, what one key creates is invisible to another: its tasks, streams, sessions and embedding batches.</summary>
public sealed class Tenant_isolation
{
    GatewayFactory _factory = null!;
    HttpClient _alice = null!;
    HttpClient _bob = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["API_KEYS"] = "alice:alice-key-1,bob:bob-key-2",
            ["SIMULATED_TOKENS_PER_SECOND"] = "20",
        });
        _alice = Client("alice-key-1");
        _bob = Client("bob-key-2");
    }

    HttpClient Client(string key)
    {
        var http = _factory.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _alice.Dispose();
        _bob.Dispose();
        _factory.Dispose();
    }

    [Test]
    public async Task Another_key_cannot_read_cancel_stream_or_join_a_chat()
    {
        var session = "alice-" + Guid.NewGuid().ToString("N");
        var posted = await _alice.PostAsJsonAsync("/chat", new { message = "mine alone", session_id = session });
        Assert.That(posted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var taskId = (await posted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString()!;

        Assert.That((await _bob.GetAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "another key's task reads as unknown");
        Assert.That((await _bob.DeleteAsync($"/chat/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "nor can it be cancelled");
        Assert.That((await _bob.GetAsync($"/stream/{session}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "nor its stream read");
        var join = await _bob.PostAsJsonAsync("/chat", new { message = "let me in", session_id = session });
        Assert.That(join.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), await join.Content.ReadAsStringAsync());
        Assert.That((await join.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString(), Is.EqualTo("session_id"));

        // The owner still sees everything, and the task went on: bob's DELETE did nothing.
        var events = await SseClient.ReadAllAsync(_alice, $"/stream/{session}", TimeSpan.FromSeconds(30));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
        var status = await _alice.GetFromJsonAsync<JsonElement>($"/chat/{taskId}");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("api_key").GetString(), Is.EqualTo("alice"));
    }

    [Test]
    public async Task Another_key_cannot_read_an_embedding_batch()
    {
        var posted = await _alice.PostAsJsonAsync("/embeddings", new { texts = new[] { "private text" } });
        Assert.That(posted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var taskId = (await posted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString()!;

        Assert.That((await _bob.GetAsync($"/embeddings/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((await _alice.GetAsync($"/embeddings/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }
}

/// <summary>API_KEY_RPM: each key has its own request budget; one key over it gets 429 with Retry-After, the others go on.</summary>
public sealed class Per_key_rate_limit
{
    [Test]
    public async Task A_key_over_its_budget_gets_429_with_retry_after_and_other_keys_are_unaffected()
    {
        // 6 a minute: one request now, the next in ten seconds.
        using var factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["API_KEYS"] = "alice:alice-key-1,bob:bob-key-2",
            ["API_KEY_RPM"] = "6",
        });
        using var http = factory.CreateClient();
        async Task<HttpResponseMessage> Get(string path, string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return await http.SendAsync(request);
        }

        Assert.That((await Get("/stats", "alice-key-1")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var limited = await Get("/stats", "alice-key-1");
        Assert.That(limited.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That(limited.Headers.RetryAfter?.Delta, Is.GreaterThan(TimeSpan.Zero));
        var problem = await limited.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("API_KEY_RPM").And.Contain("alice"));
        var v1 = await Get("/v1/models", "alice-key-1");
        Assert.That(v1.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That((await v1.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("type").GetString(), Is.EqualTo("rate_limit_exceeded"));

        Assert.That((await Get("/stats", "bob-key-2")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "bob has his own budget");
        Assert.That((await http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "health is never limited");
    }
}
