using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LlmStream.Tests.Gateway;

/// <summary>
/// The single-process default (simulated model) refuses at the gateway, before anything is queued, what could never be
/// answered, with the field named; and takes what a demanding client sends (a byte-order mark, HEAD).
/// </summary>
public sealed class Refusing_what_cannot_be_answered
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["SIMULATED_TOKENS_PER_SECOND"] = "0",
            ["LLM_CONTEXT_TOKENS"] = "1000",
            ["LLM_MODEL_CONTEXT_TOKENS"] = "gpt-4o-mini=400,wide=100000",
            ["LLM_MODEL_LIMITS"] = "wide=0/2000",
        });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    static string Words(int count) => string.Join(' ', Enumerable.Range(0, count).Select(i => "word" + i % 50));

    async Task<long> TasksSeenAsync()
    {
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        var tasks = stats.GetProperty("tasks");
        var waiting = stats.GetProperty("queues").EnumerateArray().Sum(q => q.TryGetProperty("waiting", out var w) ? w.GetInt64() : 0);
        return tasks.GetProperty("completed").GetInt64() + tasks.GetProperty("failed").GetInt64() + tasks.GetProperty("cancelled").GetInt64() + waiting;
    }

    [Test]
    public async Task A_prompt_over_the_models_context_is_a_400_naming_the_message_and_nothing_is_queued()
    {
        var before = await TasksSeenAsync();
        var response = await _http.PostAsJsonAsync("/chat", new { message = Words(600) });
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToString());
        Assert.That(problem.GetProperty("code").GetString(), Is.EqualTo("context_length_exceeded"));
        Assert.That(problem.GetProperty("errors").TryGetProperty("message", out _), Is.True, problem.ToString());
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("400 tokens"));
        Assert.That(problem.TryGetProperty("task_id", out _), Is.False);
        Assert.That(await TasksSeenAsync(), Is.EqualTo(before), "nothing was queued");
    }

    [Test]
    public async Task The_openai_api_names_messages_or_max_tokens_as_openai_does()
    {
        var tooLong = await _http.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = Words(600) } } });
        var error = (await tooLong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.That(tooLong.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((error.GetProperty("param").GetString(), error.GetProperty("code").GetString()), Is.EqualTo(("messages", "context_length_exceeded")));

        var tooMuchAnswer = await _http.PostAsJsonAsync("/v1/chat/completions",
            new { max_tokens = 390, messages = new[] { new { role = "user", content = Words(20) } } });
        error = (await tooMuchAnswer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.That(tooMuchAnswer.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((error.GetProperty("param").GetString(), error.GetProperty("code").GetString()), Is.EqualTo(("max_tokens", "context_length_exceeded")));
    }

    [Test]
    public async Task A_request_larger_than_a_minute_of_the_token_limit_is_refused_not_left_to_hold_everyone_back()
    {
        // "wide" has room for the prompt in its context, but its limit grants 2,000 tokens a minute.
        var response = await _http.PostAsJsonAsync("/chat", new { message = Words(3000), model = "wide" });
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToString());
        Assert.That(problem.GetProperty("code").GetString(), Is.EqualTo("request_too_large"));
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("LLM_MODEL_LIMITS"));

        var small = await _http.PostAsJsonAsync("/chat", new { message = Words(100), model = "wide" });
        Assert.That(small.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await small.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task A_model_the_simulated_model_does_not_list_is_a_404_on_every_api()
    {
        var chat = await _http.PostAsJsonAsync("/chat", new { message = "hi", model = "gpt-5" });
        var problem = await chat.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(chat.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((problem.GetProperty("field").GetString(), problem.GetProperty("code").GetString()), Is.EqualTo(("model", "model_not_found")));

        var embeddings = await _http.PostAsJsonAsync("/embeddings", new { texts = new[] { "x" }, model = "gpt-5" });
        Assert.That(embeddings.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));

        foreach (var (path, body) in new (string, object)[]
                 {
                     ("/v1/chat/completions", new { model = "gpt-5", messages = new[] { new { role = "user", content = "hi" } } }),
                     ("/v1/embeddings", new { model = "gpt-5", input = "hi" }),
                 })
        {
            var response = await _http.PostAsJsonAsync(path, body);
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), path);
            Assert.That((error.GetProperty("code").GetString(), error.GetProperty("param").GetString()), Is.EqualTo(("model_not_found", "model")), path);
        }
        var listed = await _http.GetFromJsonAsync<JsonElement>("/v1/models");
        Assert.That(listed.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()), Does.Not.Contain("gpt-5"));
    }

    [Test]
    public async Task The_simulated_model_queues_behind_no_rate_limit_unless_one_is_set()
    {
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        var scopes = stats.GetProperty("rate_limits").EnumerateArray().Select(l => l.GetProperty("scope").GetString() + " " + l.GetProperty("kind").GetString());
        Assert.That(scopes, Is.EqualTo(new[] { "model:wide tokens" }), "only the limit set; LLM_RPM and LLM_TPM are off for the simulated model");
    }

    [Test]
    public async Task A_body_with_a_byte_order_mark_is_json_all_the_same()
    {
        using var content = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("""{"message":"with a BOM"}""")]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var response = await _http.PostAsync("/chat", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task Head_answers_like_get_without_a_body()
    {
        var accepted = await (await _http.PostAsJsonAsync("/chat", new { message = "head" })).Content.ReadFromJsonAsync<JsonElement>();
        foreach (var path in new[] { "/v1/models", "/stats", $"/chat/{accepted.GetProperty("task_id").GetString()}", $"/stream/{accepted.GetProperty("session_id").GetString()}", "/health/ready" })
        {
            using var get = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            using var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path)).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(head.StatusCode, Is.EqualTo(get.StatusCode), path);
            Assert.That(head.Content.Headers.ContentType?.MediaType, Is.EqualTo(get.Content.Headers.ContentType?.MediaType), path);
            Assert.That(await head.Content.ReadAsByteArrayAsync(), Is.Empty, path);
        }
        using var unknown = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/chat/nosuchtask"));
        Assert.That(unknown.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public void MassTransit_reports_no_usage_unless_asked()
    {
        var telemetry = _factory.Services.GetRequiredService<IOptions<UsageTelemetryOptions>>().Value;
        Assert.That(telemetry.Enabled, Is.False);
    }
}
