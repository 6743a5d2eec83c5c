using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Providers;

namespace LlmStream.Tests.Gateway;

/// <summary>
/// /v1/responses in the single-process default, with the simulated model and API keys: what is refused (OpenAI's error
/// object naming the parameter), who may see a response, store, delete, cancel in each state, and starting_after.
/// </summary>
public sealed class Responses_requests
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["API_KEYS"] = "alice:alice-key-1,bob:bob-key-2",
            ["SIMULATED_TOKENS_PER_SECOND"] = "0",
        });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string key = "alice-key-1", string? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (body is not null)
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        return await _http.SendAsync(request);
    }

    async Task<JsonElement> CreateAsync(string body, string key = "alice-key-1")
    {
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", key, body);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), json.ToString());
        return json;
    }

    static string Expected(string message) => string.Concat(SimulatedChatClient.Tokens(message));

    [TestCase("""{"input":"hi","logprobs":true}""", "logprobs")]
    [TestCase("""{"input":"hi","prompt":{"id":"p"}}""", "prompt")]
    [TestCase("""{"input":"hi","text":{"format":{"type":"json_object"}}}""", "text")]
    [TestCase("""{"input":"hi","reasoning":{"effort":"high"}}""", "reasoning")]
    [TestCase("""{"input":"hi","include":["reasoning.encrypted_content"]}""", "include")]
    [TestCase("""{"input":"hi","conversation":"conv_1"}""", "conversation")]
    [TestCase("""{"model":"gpt-4o-mini"}""", "input")]
    [TestCase("""{"input":""}""", "input")]
    [TestCase("""{"input":[]}""", "input")]
    [TestCase("""{"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://example.com/a.png"}]}]}""", "input[0].content[0]")]
    [TestCase("""{"input":[{"role":"critic","content":"x"}]}""", "input[0].role")]
    [TestCase("""{"input":[{"type":"reasoning","summary":[]}]}""", "input[0].type")]
    [TestCase("""{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"[1]"}]}""", "input[0].arguments")]
    [TestCase("""{"input":[{"type":"function_call_output","output":"x"}]}""", "input[0].call_id")]
    [TestCase("""{"input":"hi","tools":[{"type":"web_search"}]}""", "tools[0].type")]
    [TestCase("""{"input":"hi","tools":[{"type":"function","name":"bad name"}]}""", "tools[0].name")]
    [TestCase("""{"input":"hi","tool_choice":{"type":"function","name":"nope"}}""", "tool_choice")]
    [TestCase("""{"input":"hi","temperature":3}""", "temperature")]
    [TestCase("""{"input":"hi","max_output_tokens":0}""", "max_output_tokens")]
    [TestCase("""{"input":"hi","background":true,"store":false}""", "store")]
    [TestCase("""{"input":"hi","metadata":{"priority":"11"}}""", "metadata.priority")]
    [TestCase("""{"input":"hi","previous_response_id":"chatcmpl-1"}""", "previous_response_id")]
    [TestCase("""{"input":"hi","previous_response_id":"resp_0123456789abcdef0123456789abcdef"}""", "previous_response_id")]
    public async Task A_request_this_gateway_cannot_honour_is_a_400_naming_the_parameter(string body, string param)
    {
        using var response = await SendAsync(HttpMethod.Post, "/v1/responses", body: body);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.That((response.StatusCode, error.GetProperty("param").GetString()), Is.EqualTo((HttpStatusCode.BadRequest, param)), error.ToString());
        Assert.That(error.GetProperty("message").GetString(), Is.Not.Empty);
    }

    [Test]
    public async Task Parameters_that_ask_for_nothing_more_are_accepted_and_shown_back()
    {
        var response = await CreateAsync("""
            {"model":"gpt-4o-mini","input":"echo me","instructions":"Be brief.","temperature":0.5,"top_p":0.9,"max_output_tokens":500,
             "text":{"format":{"type":"text"}},"truncation":"disabled","include":[],"reasoning":{},"parallel_tool_calls":false,
             "metadata":{"team":"search"},"user":"u-1","tools":[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{}}}],"tool_choice":"none"}
            """);
        Assert.That(response.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString(), Is.EqualTo(Expected("echo me")));
        Assert.That((response.GetProperty("instructions").GetString(), response.GetProperty("temperature").GetDouble(), response.GetProperty("max_output_tokens").GetInt32()),
            Is.EqualTo(("Be brief.", 0.5, 500)));
        Assert.That(response.GetProperty("metadata").GetProperty("team").GetString(), Is.EqualTo("search"));
        Assert.That(response.GetProperty("tools")[0].GetProperty("name").GetString(), Is.EqualTo("lookup"));
        Assert.That((response.GetProperty("tool_choice").GetString(), response.GetProperty("parallel_tool_calls").GetBoolean()), Is.EqualTo(("none", false)));
    }

    [Test]
    public async Task Another_key_cannot_read_cancel_delete_or_continue_a_response()
    {
        var id = (await CreateAsync("""{"input":"alice's secret"}""")).GetProperty("id").GetString();
        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/v1/responses/{id}"), (HttpMethod.Get, $"/v1/responses/{id}?stream=true"),
                     (HttpMethod.Post, $"/v1/responses/{id}/cancel"), (HttpMethod.Delete, $"/v1/responses/{id}") })
        {
            using var response = await SendAsync(method, path, "bob-key-2");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), $"{method} {path}");
        }
        using var continued = await SendAsync(HttpMethod.Post, "/v1/responses", "bob-key-2", $$"""{"input":"more","previous_response_id":"{{id}}"}""");
        Assert.That(continued.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        using var own = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}");
        Assert.That(own.StatusCode, Is.EqualTo(HttpStatusCode.OK), "alice still reads it");
    }

    [Test]
    public async Task A_response_not_stored_or_deleted_is_gone_and_cannot_be_continued()
    {
        var unstored = await CreateAsync("""{"input":"forget me","store":false}""");
        Assert.That(unstored.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString(), Is.EqualTo(Expected("forget me")));
        using (var gone = await SendAsync(HttpMethod.Get, $"/v1/responses/{unstored.GetProperty("id").GetString()}"))
            Assert.That(gone.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));

        var id = (await CreateAsync("""{"input":"delete me"}""")).GetProperty("id").GetString();
        using (var deleted = await SendAsync(HttpMethod.Delete, $"/v1/responses/{id}"))
        {
            var body = await deleted.Content.ReadFromJsonAsync<JsonElement>();
            Assert.That((body.GetProperty("id").GetString(), body.GetProperty("deleted").GetBoolean()), Is.EqualTo((id, true)));
        }
        using (var get = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}"))
            Assert.That(get.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        using (var again = await SendAsync(HttpMethod.Delete, $"/v1/responses/{id}"))
            Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        using var continued = await SendAsync(HttpMethod.Post, "/v1/responses", body: $$"""{"input":"more","previous_response_id":"{{id}}"}""");
        Assert.That((await continued.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("previous_response_not_found"));
    }

    [Test]
    public async Task Starting_after_gives_exactly_the_events_after_it_and_a_bad_one_is_refused()
    {
        var id = (await CreateAsync("""{"input":"count my events","background":true}""")).GetProperty("id").GetString();
        using var whole = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}?stream=true");
        var all = EndToEnd.Responses_api.SseEvents(await whole.Content.ReadAsStringAsync());
        Assert.That(all.Select(e => e.GetProperty("sequence_number").GetInt32()), Is.EqualTo(Enumerable.Range(0, all.Count)));
        Assert.That(all[^1].GetProperty("type").GetString(), Is.EqualTo("response.completed"));
        Assert.That(all[^1].GetProperty("response").GetProperty("usage").GetProperty("output_tokens").GetInt32(), Is.EqualTo(SimulatedChatClient.Tokens("count my events").Count));

        foreach (var n in new[] { 0, 5, all.Count - 2, all.Count - 1, all.Count + 10 })
        {
            using var resumed = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}?stream=true&starting_after={n}");
            var rest = EndToEnd.Responses_api.SseEvents(await resumed.Content.ReadAsStringAsync());
            Assert.That(rest.Select(e => e.GetRawText()), Is.EqualTo(all.Skip(n + 1).Select(e => e.GetRawText())), $"after {n}");
        }
        foreach (var bad in new[] { "-1", "x", "1.5", "99999999999" })
        {
            using var refused = await SendAsync(HttpMethod.Get, $"/v1/responses/{id}?stream=true&starting_after={bad}");
            var error = (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.That((refused.StatusCode, error.GetProperty("param").GetString()), Is.EqualTo((HttpStatusCode.BadRequest, "starting_after")), bad);
        }
    }

    [Test]
    public async Task Cancel_works_queued_in_progress_and_after_the_end()
    {
        // One generation at a time, slowly: the first response runs while the second waits in the queue.
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "5", ["CHAT_CONCURRENCY"] = "1" });
        using var http = factory.CreateClient();
        async Task<JsonElement> PostAsync(string path, string? body = null)
        {
            using var response = await http.PostAsync(path, body is null ? null : new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            return await response.Content.ReadFromJsonAsync<JsonElement>();
        }
        var running = (await PostAsync("/v1/responses", """{"input":"a long one","background":true}""")).GetProperty("id").GetString();
        var waiting = (await PostAsync("/v1/responses", """{"input":"a queued one","background":true}""")).GetProperty("id").GetString();
        for (var i = 0; i < 200 && (await http.GetFromJsonAsync<JsonElement>($"/v1/responses/{running}")).GetProperty("status").GetString() != "in_progress"; i++)
            await Task.Delay(50);
        Assert.That((await http.GetFromJsonAsync<JsonElement>($"/v1/responses/{waiting}")).GetProperty("status").GetString(), Is.EqualTo("queued"));

        Assert.That((await PostAsync($"/v1/responses/{waiting}/cancel")).GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        Assert.That((await PostAsync($"/v1/responses/{running}/cancel")).GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        Assert.That((await PostAsync($"/v1/responses/{running}/cancel")).GetProperty("status").GetString(), Is.EqualTo("cancelled"), "cancelling again changes nothing");

        using var stream = await http.GetAsync($"/v1/responses/{running}?stream=true");
        var events = EndToEnd.Responses_api.SseEvents(await stream.Content.ReadAsStringAsync());
        Assert.That(events.Select(e => e.GetProperty("type").GetString()), Does.Contain("response.in_progress"), "it had begun");
        Assert.That(events[^1].GetProperty("type").GetString(), Is.EqualTo("response.cancelled"));
        Assert.That(events[^1].GetProperty("response").GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        using var queuedStream = await http.GetAsync($"/v1/responses/{waiting}?stream=true");
        Assert.That(EndToEnd.Responses_api.SseEvents(await queuedStream.Content.ReadAsStringAsync()).Select(e => e.GetProperty("type").GetString()),
            Is.EqualTo(new[] { "response.created", "response.cancelled" }), "the queued one never started");
    }
}
