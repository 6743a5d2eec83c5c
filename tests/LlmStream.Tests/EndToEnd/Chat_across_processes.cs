using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmStream.FakeOpenAI;
using LlmStream.Messaging;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>POST /chat → RabbitMQ → ChatWorker → OpenAI SDK → fake provider → Redis stream → SSE, across processes.</summary>
public sealed class Chat_across_processes
{
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("chat");
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    async Task<(string TaskId, string SessionId)> Post(object body)
    {
        var response = await _http.PostAsJsonAsync("/chat", body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (accepted.GetProperty("task_id").GetString()!, accepted.GetProperty("session_id").GetString()!);
    }

    [Test]
    public async Task Streams_the_providers_exact_text_to_the_end()
    {
        const string reply = "Paris is the capital of France.\n\ndata: not an event — \"quoted\", ünïcödé, emoji 🚀.";
        _cluster.Provider.Behavior.Reply = _ => reply;
        var (taskId, sessionId) = await Post(new { message = "What is the capital of France?", system_prompt = "Answer briefly.", model = "gpt-4o-mini" });

        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));

        Assert.That(events.Select(e => e.Event).First(), Is.EqualTo("queued"), _cluster.Logs());
        Assert.That(events.Last().Event, Is.EqualTo("done"), _cluster.Logs());
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(reply));
        Assert.That(events.Count(e => e.Event == "token"), Is.EqualTo(FakeOpenAiServer.Tokenize(reply).Count), "one event per token");
        var done = StreamText.DataOf(events.Last());
        Assert.That(done.GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(done.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(FakeOpenAiServer.Tokenize(reply).Count));

        var request = _cluster.Provider.Behavior.Requests.Last();
        Assert.That(request.Model, Is.EqualTo("gpt-4o-mini"));
        Assert.That(request.Stream, Is.True);
        Assert.That(request.Messages.Select(m => m.Role), Is.EqualTo(new[] { "system", "user" }));
        Assert.That(request.Messages.Last().Content, Is.EqualTo("What is the capital of France?"));

        var status = await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(reply));
    }

    [Test]
    public async Task A_subscriber_arriving_after_the_last_token_still_gets_the_whole_answer()
    {
        _cluster.Provider.Behavior.Reply = message => "Late but complete: " + message;
        var (taskId, sessionId) = await Post(new { message = "late subscriber" });

        var deadline = DateTime.UtcNow.AddSeconds(60);
        string state;
        do
        {
            await Task.Delay(100);
            state = (await _http.GetFromJsonAsync<JsonElement>($"/chat/{taskId}")).GetProperty("status").GetString()!;
        } while (state != "completed" && DateTime.UtcNow < deadline);
        Assert.That(state, Is.EqualTo("completed"), _cluster.Logs());

        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(30));
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo("Late but complete: late subscriber"));
        Assert.That(events.Last().Event, Is.EqualTo("done"));
    }

    [Test]
    public async Task Several_tasks_in_one_session_stream_in_order_and_status_reports_failures()
    {
        _cluster.Provider.Behavior.Reply = message => "Re: " + message;
        var (first, sessionId) = await Post(new { message = "one", session_id = "conversation-" + Guid.NewGuid().ToString("N") });
        await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
        _cluster.Provider.Behavior.FailNext(400, message: "unsupported parameter: frobnicate");
        var (second, _) = await Post(new { message = "two", session_id = sessionId });

        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
        Assert.That(StreamText.Of(events, first), Is.EqualTo("Re: one"));
        Assert.That(events.Last().Event, Is.EqualTo("error"), _cluster.Logs());
        var error = StreamText.DataOf(events.Last()).GetProperty("error").GetString();
        Assert.That(error, Does.Contain("HTTP 400"));

        var status = await _http.GetFromJsonAsync<JsonElement>($"/chat/{second}");
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"));
        Assert.That(status.GetProperty("error").GetString(), Is.EqualTo(error));
    }

    [Test]
    public async Task The_openai_sdk_gets_the_providers_answer_through_the_queue_with_its_parameters()
    {
        _cluster.Provider.Behavior.Reply = message => "Via the queue: " + message;
        var chat = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("unused"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_cluster.GatewayUrl, "/v1") }).GetChatClient("gpt-4o-mini");
        var options = new OpenAI.Chat.ChatCompletionOptions
        {
            Temperature = 0.5f,
            MaxOutputTokenCount = 50,
            FrequencyPenalty = 0.25f,
            PresencePenalty = -0.75f,
            ResponseFormat = OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat("answer",
                BinaryData.FromString("""{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}"""),
                "what the model must answer", jsonSchemaIsStrict: true),
        };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK
        options.Seed = 42;
#pragma warning restore OPENAI001
        var text = new System.Text.StringBuilder();
        OpenAI.Chat.ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(
            [new OpenAI.Chat.SystemChatMessage("You are terse."), new OpenAI.Chat.UserChatMessage("first"),
             new OpenAI.Chat.AssistantChatMessage("ok"), new OpenAI.Chat.UserChatMessage("second")], options))
        {
            foreach (var part in update.ContentUpdate)
                text.Append(part.Text);
            usage = update.Usage ?? usage;
        }

        Assert.That(text.ToString(), Is.EqualTo("Via the queue: second"));
        Assert.That(usage!.OutputTokenCount, Is.EqualTo(FakeOpenAiServer.Tokenize("Via the queue: second").Count), "the provider's usage");
        var sent = _cluster.Provider.Behavior.Requests.Last();
        Assert.That(sent.Messages.Select(m => (m.Role, m.Content)), Is.EqualTo(new[] { ("system", "You are terse."), ("user", "first"), ("assistant", "ok"), ("user", "second") }));
        using var body = JsonDocument.Parse(sent.Body);
        Assert.That(body.RootElement.GetProperty("temperature").GetDouble(), Is.EqualTo(0.5).Within(1e-6));
        Assert.That(body.RootElement.GetProperty("frequency_penalty").GetDouble(), Is.EqualTo(0.25).Within(1e-6));
        Assert.That(body.RootElement.GetProperty("presence_penalty").GetDouble(), Is.EqualTo(-0.75).Within(1e-6));
        Assert.That(body.RootElement.GetProperty("seed").GetInt64(), Is.EqualTo(42));
        var format = body.RootElement.GetProperty("response_format");
        Assert.That(format.GetProperty("type").GetString(), Is.EqualTo("json_schema"), sent.Body);
        var schema = format.GetProperty("json_schema");
        Assert.That(schema.GetProperty("name").GetString(), Is.EqualTo("answer"));
        Assert.That(schema.GetProperty("strict").GetBoolean(), Is.True, sent.Body);
        Assert.That(schema.GetProperty("schema").GetProperty("required")[0].GetString(), Is.EqualTo("text"), sent.Body);
    }

    [Test]
    public async Task Json_mode_reasoning_effort_store_metadata_and_user_reach_the_provider()
    {
        _cluster.Provider.Behavior.Reply = _ => "{}";
        var response = await _http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "gpt-4o-mini",
            messages = new[] { new { role = "user", content = "answer in JSON" } },
            response_format = new { type = "json_object" },
            reasoning_effort = "high",
            store = true,
            metadata = new Dictionary<string, string> { ["team"] = "search" },
            user = "end-user-7",
        });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var sent = _cluster.Provider.Behavior.Requests.Last().Body;
        using var body = JsonDocument.Parse(sent);
        Assert.That(body.RootElement.GetProperty("response_format").GetProperty("type").GetString(), Is.EqualTo("json_object"), sent);
        Assert.That(body.RootElement.GetProperty("reasoning_effort").GetString(), Is.EqualTo("high"), sent);
        Assert.That(body.RootElement.GetProperty("store").GetBoolean(), Is.True, sent);
        Assert.That(body.RootElement.GetProperty("metadata").GetProperty("team").GetString(), Is.EqualTo("search"), sent);
        Assert.That(body.RootElement.GetProperty("user").GetString(), Is.EqualTo("end-user-7"), sent);
    }

    [Test]
    public async Task Tool_calls_reach_the_openai_sdk_whole_and_streamed_and_the_tool_result_gets_its_answer()
    {
        _cluster.Provider.Behavior.ToolCall = message => message.Contains("weather", StringComparison.Ordinal) ? new FakeToolCall("get_weather", "{\"city\":\"Paris\"}") : null;
        _cluster.Provider.Behavior.Reply = message => "It is sunny: " + message;
        var chat = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("unused"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_cluster.GatewayUrl, "/v1") }).GetChatClient("gpt-4o-mini");
        var options = new OpenAI.Chat.ChatCompletionOptions { AllowParallelToolCalls = false };
        options.Tools.Add(OpenAI.Chat.ChatTool.CreateFunctionTool("get_weather", "The weather of a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""")));
        var question = new OpenAI.Chat.UserChatMessage("what is the weather in Paris?");

        OpenAI.Chat.ChatCompletion completion = await chat.CompleteChatAsync([question], options);
        Assert.That(completion.FinishReason, Is.EqualTo(OpenAI.Chat.ChatFinishReason.ToolCalls), _cluster.Logs());
        var call = completion.ToolCalls.Single();
        Assert.That(call.FunctionName, Is.EqualTo("get_weather"));
        Assert.That(JsonDocument.Parse(call.FunctionArguments.ToString()).RootElement.GetProperty("city").GetString(), Is.EqualTo("Paris"));
        Assert.That(_cluster.Provider.Behavior.Requests.Last().HasTools, Is.True, "the tool was offered to the provider");
        using (var offered = JsonDocument.Parse(_cluster.Provider.Behavior.Requests.Last().Body))
            Assert.That(offered.RootElement.GetProperty("parallel_tool_calls").GetBoolean(), Is.False, "one tool call per turn, as asked");

        string? name = null, id = null;
        var arguments = new System.Text.StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([question], options))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                name = part.FunctionName ?? name;
                id = part.ToolCallId ?? id;
                arguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }
            finish = update.FinishReason ?? finish;
        }
        Assert.That(finish, Is.EqualTo(OpenAI.Chat.ChatFinishReason.ToolCalls));
        Assert.That(name, Is.EqualTo("get_weather"));
        Assert.That(id, Is.Not.Empty);
        Assert.That(JsonDocument.Parse(arguments.ToString()).RootElement.GetProperty("city").GetString(), Is.EqualTo("Paris"));

        OpenAI.Chat.ChatCompletion answer = await chat.CompleteChatAsync(
            [question, new OpenAI.Chat.AssistantChatMessage(completion), new OpenAI.Chat.ToolChatMessage(call.Id, "Sunny, 21 C")], options);
        Assert.That(answer.Content.Single().Text, Is.EqualTo("It is sunny: what is the weather in Paris?"));
        Assert.That(_cluster.Provider.Behavior.Requests.Last().Messages.Select(m => m.Role), Is.EqualTo(new[] { "user", "assistant", "tool" }));
    }

    [Test]
    public async Task The_priority_queues_are_declared_with_broker_priorities()
    {
        foreach (var queue in new[] { "high", "default", "low" })
        {
            var declared = await _cluster.RabbitMq.QueueAsync(_cluster.VirtualHost, queue);
            Assert.That(declared.GetProperty("arguments").GetProperty("x-max-priority").GetInt32(), Is.EqualTo(10), queue);
            Assert.That(declared.GetProperty("durable").GetBoolean(), Is.True, queue);
        }
    }

    [Test]
    public async Task The_work_queues_are_lazy_under_the_deployed_policy()
    {
        // The policy file `make cluster` and the test vhosts apply: its pattern must name every work queue and no other.
        using var policy = JsonDocument.Parse(await File.ReadAllTextAsync(RabbitMqServer.LazyQueuesPolicy));
        var pattern = new Regex(policy.RootElement.GetProperty("pattern").GetString()!);
        foreach (var queue in WorkQueues.Kinds.SelectMany(kind => kind.All))
            Assert.That(pattern.IsMatch(queue), queue);
        Assert.That(pattern.IsMatch("high_error") || pattern.IsMatch("highway"), Is.False);

        // And RabbitMQ runs the queues the services declared under it, with their priorities kept. The management
        // API shows a queue's policy once its statistics come in (every second here).
        foreach (var queue in WorkQueues.Chat.All)
        {
            var declared = await QueueWithStatisticsAsync(queue);
            Assert.That(declared.GetProperty("policy").GetString(), Is.EqualTo(RabbitMqServer.LazyQueuesPolicyName), queue);
            Assert.That(declared.GetProperty("effective_policy_definition").GetProperty("queue-mode").GetString(), Is.EqualTo("lazy"), queue);
            Assert.That(declared.GetProperty("arguments").GetProperty("x-max-priority").GetInt32(), Is.EqualTo(10), queue);
        }
    }

    async Task<JsonElement> QueueWithStatisticsAsync(string queue)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                var declared = await _cluster.RabbitMq.QueueAsync(_cluster.VirtualHost, queue);
                if (declared.TryGetProperty("policy", out _))
                    return declared;
                if (DateTime.UtcNow > deadline)
                    Assert.Fail($"queue {queue} shows no policy after 20 s: {declared}");
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline) { } // not in the management database yet
            await Task.Delay(250);
        }
    }
}
