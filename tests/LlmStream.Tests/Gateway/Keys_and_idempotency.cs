using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Gateway;

public sealed class Idempotency_keys
{
    [Test]
    public async Task The_same_key_with_another_request_is_refused_and_starts_nothing()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "0" });
        using var http = factory.CreateClient();
        async Task<HttpResponseMessage> Post(string path, object body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", "payment-42");
            return await http.SendAsync(request);
        }

        var first = await Post("/chat", new { message = "charge 10" });
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var firstTask = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString();

        var changed = await Post("/chat", new { message = "charge 1000" });
        Assert.That(changed.StatusCode, Is.EqualTo(HttpStatusCode.UnprocessableEntity));
        var problem = await changed.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(problem.GetProperty("field").GetString(), Is.EqualTo("Idempotency-Key"));
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain(firstTask));

        var v1 = await Post("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "charge 10" } } });
        Assert.That(v1.StatusCode, Is.EqualTo(HttpStatusCode.UnprocessableEntity), "another endpoint is another request");
        Assert.That((await v1.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString(), Is.EqualTo("Idempotency-Key"));

        var again = await Post("/chat", new { message = "charge 10" });
        Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "the same request again is still answered with its task");
        Assert.That((await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString(), Is.EqualTo(firstTask));
    }

    [Test]
    public async Task Repeating_a_request_with_the_same_key_returns_the_same_task_and_stream()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "0" });
        using var http = factory.CreateClient();
        async Task<JsonElement> Post(string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = JsonContent.Create(new { message = "once" }) };
            request.Headers.Add("Idempotency-Key", key);
            var response = await http.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
            return await response.Content.ReadFromJsonAsync<JsonElement>();
        }

        var first = await Post("order-17");
        var again = await Post("order-17");
        var other = await Post("order-18");
        Assert.That(again.GetProperty("task_id").GetString(), Is.EqualTo(first.GetProperty("task_id").GetString()));
        Assert.That(again.GetProperty("session_id").GetString(), Is.EqualTo(first.GetProperty("session_id").GetString()));
        Assert.That(other.GetProperty("task_id").GetString(), Is.Not.EqualTo(first.GetProperty("task_id").GetString()));
        var events = await SseClient.ReadAllAsync(http, first.GetProperty("stream_url").GetString()!, TimeSpan.FromSeconds(30));
        Assert.That(events.Count(e => e.Event == "queued"), Is.EqualTo(1), "one generation for both requests");

        using var v1 = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { messages = new[] { new { role = "user", content = "v1 once" } } }),
        };
        v1.Headers.Add("Idempotency-Key", "v1-key");
        var v1First = (await http.SendAsync(v1)).Headers.GetValues("X-LlmStream-Task-Id").Single();
        using var v1Again = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { messages = new[] { new { role = "user", content = "v1 once" } } }),
        };
        v1Again.Headers.Add("Idempotency-Key", "v1-key");
        var repeated = await http.SendAsync(v1Again);
        Assert.That(repeated.Headers.GetValues("X-LlmStream-Task-Id").Single(), Is.EqualTo(v1First));
        Assert.That((await repeated.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(),
            Does.Contain("v1 once"));
    }
}

public sealed class Api_keys
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["SIMULATED_TOKENS_PER_SECOND"] = "0",
            ["API_KEYS"] = "alice:alice-secret-key,bob:bob-secret-key",
        });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    HttpRequestMessage Request(HttpMethod method, string url, string? key, object? body = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body) };
        if (key is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return request;
    }

    [Test]
    public async Task Requests_without_a_valid_key_get_401_and_health_stays_open()
    {
        var none = await _http.SendAsync(Request(HttpMethod.Post, "/chat", null, new { message = "hi" }));
        Assert.That(none.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(none.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        var wrong = await _http.SendAsync(Request(HttpMethod.Post, "/chat", "not-a-key", new { message = "hi" }));
        Assert.That(wrong.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        var v1 = await _http.SendAsync(Request(HttpMethod.Get, "/v1/models", null));
        Assert.That(v1.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await v1.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("message").GetString(), Does.Contain("API key"));
        Assert.That((await _http.GetAsync("/stats")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await _http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task A_valid_key_is_accepted_and_its_name_recorded_on_the_task()
    {
        var response = await _http.SendAsync(Request(HttpMethod.Post, "/chat", "bob-secret-key", new { message = "hi" }));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var status = await (await _http.SendAsync(Request(HttpMethod.Get, $"/chat/{accepted.GetProperty("task_id").GetString()}", "bob-secret-key")))
            .Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(status.GetProperty("api_key").GetString(), Is.EqualTo("bob"));
        // A browser's EventSource cannot send headers: the stream also takes ?api_key=.
        var events = await SseClient.ReadAllAsync(_http, $"{accepted.GetProperty("stream_url").GetString()}?api_key=bob-secret-key", TimeSpan.FromSeconds(30));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
    }
}
