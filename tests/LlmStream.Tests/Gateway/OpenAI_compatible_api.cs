using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Providers;
using OpenAI;
using OpenAI.Chat;

namespace LlmStream.Tests.Gateway;

/// <summary>The official OpenAI .NET SDK pointed at the gateway's /v1, in the single-process default with the simulated model.</summary>
public sealed class OpenAI_compatible_api
{
    GatewayFactory _factory = null!;
    HttpClient _http = null!;
    ChatClient _chat = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _factory = new GatewayFactory(new Dictionary<string, string> { ["SIMULATED_TOKENS_PER_SECOND"] = "0" });
        _http = _factory.CreateClient();
        _chat = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions
        {
            Endpoint = new Uri(_http.BaseAddress!, "/v1"),
            Transport = new HttpClientPipelineTransport(_http),
            RetryPolicy = new ClientRetryPolicy(0),
        }).GetChatClient("gpt-4o-mini");
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _http.Dispose();
        _factory.Dispose();
    }

    static string Expected(string message) => string.Concat(SimulatedChatClient.Tokens(message));

    [Test]
    public async Task A_completion_comes_back_whole_with_usage_and_finish_reason()
    {
        ChatCompletion completion = await _chat.CompleteChatAsync([new SystemChatMessage("be brief"), new UserChatMessage("hello sdk")]);
        Assert.That(completion.Content.Single().Text, Is.EqualTo(Expected("hello sdk")));
        Assert.That(completion.FinishReason, Is.EqualTo(ChatFinishReason.Stop));
        Assert.That(completion.Usage.OutputTokenCount, Is.EqualTo(SimulatedChatClient.Tokens("hello sdk").Count));
        Assert.That(completion.Usage.TotalTokenCount, Is.EqualTo(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount));
        Assert.That(completion.Id, Does.StartWith("chatcmpl-"));
    }

    [Test]
    public async Task A_model_is_retrieved_by_its_id_and_an_unknown_one_is_a_404()
    {
        var models = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions
        {
            Endpoint = new Uri(_http.BaseAddress!, "/v1"),
            Transport = new HttpClientPipelineTransport(_http),
            RetryPolicy = new ClientRetryPolicy(0),
        }).GetOpenAIModelClient();
        OpenAI.Models.OpenAIModel model = await models.GetModelAsync("gpt-4o-mini");
        Assert.That((model.Id, model.OwnedBy), Is.EqualTo(("gpt-4o-mini", "llmstream")));
        var unknown = Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("no-such-model"));
        Assert.That(unknown!.Status, Is.EqualTo(404));
        Assert.That(unknown.Message, Does.Contain("no-such-model"));
    }

    [Test]
    public async Task A_streamed_completion_arrives_chunk_by_chunk_with_usage()
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var chunks = 0;
        await foreach (var update in _chat.CompleteChatStreamingAsync([new UserChatMessage("stream please")]))
        {
            chunks++;
            foreach (var part in update.ContentUpdate)
                text.Append(part.Text);
            finish = update.FinishReason ?? finish;
            usage = update.Usage ?? usage;
        }
        Assert.That(text.ToString(), Is.EqualTo(Expected("stream please")));
        Assert.That(finish, Is.EqualTo(ChatFinishReason.Stop));
        Assert.That(usage, Is.Not.Null, "the SDK asks for stream_options.include_usage");
        Assert.That(chunks, Is.GreaterThanOrEqualTo(SimulatedChatClient.Tokens("stream please").Count + 2), "role chunk, one per token, finish chunk");
    }

    [Test]
    public async Task The_raw_stream_is_openai_wire_format_ending_in_done()
    {
        var response = await _http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "gpt-4o-mini",
            stream = true,
            messages = new[] { new { role = "user", content = "raw" } },
        });
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/event-stream"));
        Assert.That(lines, Is.All.StartWith("data: "));
        Assert.That(lines[^1], Is.EqualTo("data: [DONE]"));
        var chunks = lines[..^1].Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement).ToList();
        Assert.That(chunks.Select(c => c.GetProperty("object").GetString()), Is.All.EqualTo("chat.completion.chunk"));
        Assert.That(chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString(), Is.EqualTo("assistant"));
        Assert.That(chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(chunks.Any(c => c.TryGetProperty("usage", out _)), Is.False, "no usage chunk unless stream_options.include_usage");
    }

    [TestCase("""{"messages":[]}""", "messages")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"priority":11}""", "priority")]
    [TestCase("""{"messages":[{"role":"robot","content":"x"}]}""", "messages[0].role")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name!"}}]}""", "tools[0].function.name")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}""", "tool_choice")]
    [TestCase("""{"messages":[{"role":"tool","content":"x"}]}""", "messages[0].tool_call_id")]
    [TestCase("""{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"not json"}}]}]}""", "messages[0].tool_calls[0].function.arguments")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"n":2}""", "n")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"n":"2"}""", "n")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"temperature":5}""", "temperature")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"frequency_penalty":3}""", "frequency_penalty")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"seed":"x"}""", "seed")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"parallel_tool_calls":"yes"}""", "parallel_tool_calls")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}""", "response_format.type")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"bad name","schema":{}}}}""", "response_format.json_schema.name")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"logprobs":true}""", "logprobs")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"very high"}""", "reasoning_effort")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"metadata":{"n":1}}""", "metadata")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"store":"yes"}""", "store")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"web_search_options":{}}""", "web_search_options")]
    [TestCase("""{"messages":[{"role":"user","content":"x"}],"temprature":0.5}""", "temprature")]
    public async Task Bad_requests_get_openais_error_object_naming_the_parameter(string body, string param)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await _http.PostAsync("/v1/chat/completions", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.That(error.GetProperty("param").GetString(), Is.EqualTo(param));
        Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(error.GetProperty("message").GetString(), Is.Not.Empty);
    }

    [Test]
    public async Task Parameters_that_ask_for_nothing_to_be_dropped_are_accepted()
    {
        // What some clients send by default: no log probabilities, nothing stored, no biases, the default tier.
        using var content = new StringContent("""
            {"messages":[{"role":"user","content":"defaults"}],"logprobs":false,"top_logprobs":null,"store":false,
             "logit_bias":{},"metadata":{},"service_tier":"auto","modalities":["text"],"response_format":{"type":"text"},
             "seed":7,"frequency_penalty":0.5,"presence_penalty":-0.5,"parallel_tool_calls":true}
            """, Encoding.UTF8, "application/json");
        var response = await _http.PostAsync("/v1/chat/completions", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var completion = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), Is.EqualTo(Expected("defaults")));
    }

    [Test]
    public async Task Priority_comes_from_the_x_priority_header_too()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { messages = new[] { new { role = "user", content = "urgent" } } }),
        };
        request.Headers.Add("X-Priority", "9");
        var response = await _http.SendAsync(request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var taskId = response.Headers.GetValues("X-LlmStream-Task-Id").Single();
        var status = await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}");
        Assert.That(status.GetProperty("priority").GetInt32(), Is.EqualTo(9));

        using var bad = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { messages = new[] { new { role = "user", content = "x" } } }),
        };
        bad.Headers.Add("X-Priority", "urgent");
        var rejected = await _http.SendAsync(bad);
        Assert.That(rejected.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await rejected.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString(), Is.EqualTo("X-Priority"));
    }

    [Test]
    public async Task Models_are_listed_for_sdks()
    {
        var models = await _http.GetFromJsonAsync<JsonElement>("/v1/models");
        Assert.That(models.GetProperty("object").GetString(), Is.EqualTo("list"));
        Assert.That(models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()), Does.Contain("gpt-4o-mini"));
    }
}
