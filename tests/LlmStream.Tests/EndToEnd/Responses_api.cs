using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.FakeOpenAI;
using LlmStream.Tests.Infrastructure;
using OpenAI.Responses;

#pragma warning disable OPENAI001 // the SDK marks its responses client as experimental

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// /v1/responses on every broker, through real clients: the official openai npm package (tests/node) and the OpenAI .NET
/// SDK's responses client, against a gateway (two on the brokers, so that a stream resumes on the other one), its
/// workers and the fake provider, whose recorded requests show what the model was sent.
/// </summary>
[TestFixture("inmemory")]
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Responses_api(string broker)
{
    const string Model = "gpt-4o-mini";
    Cluster _cluster = null!;
    HttpClient _http = null!;

    /// <summary>About 30 tokens: long enough for a stream to be broken off at its 10th event.</summary>
    static string Answer(string message) => $"answer to {message}: " + string.Join(' ', Enumerable.Range(1, 24).Select(i => $"w{i}"));

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"responses-{broker}", broker: broker,
            settings: new Dictionary<string, string> { ["RETRY_LIMIT"] = "3", ["RETRY_BASE_MS"] = "100" });
        if (broker != "inmemory")
            await _cluster.StartGatewayAsync(); // in memory there is one process; on a broker a stream resumes on the other gateway
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [SetUp]
    public void ResetProvider()
    {
        var behavior = _cluster.Provider.Behavior;
        behavior.Reset();
        behavior.Reply = Answer;
        behavior.TokenDelay = TimeSpan.FromMilliseconds(10);
        behavior.ToolCall = message => message.Contains("weather", StringComparison.Ordinal) ? new FakeToolCall("get_weather", """{"city":"Paris"}""") : null;
    }

    /// <summary>A gateway's /v1; in memory, where there is one gateway, the same for both.</summary>
    Uri V1(int gateway) => new(_cluster.UrlOf(Math.Min(gateway, _cluster.Gateways.Count - 1)), "/v1");

    IReadOnlyList<string> MessagesTo(string lastUserMessage) =>
        _cluster.Provider.Behavior.Requests.Last(r => r.Messages.LastOrDefault(m => m.Role == "user").Content == lastUserMessage)
            .Messages.Select(m => $"{m.Role}: {m.Content}").ToList();

    [Test]
    public async Task The_openai_npm_package_creates_resumes_retrieves_cancels_continues_and_calls_a_tool()
    {
        var script = Path.Combine(RepoPaths.Root, "tests", "node", "openai-responses.mjs");
        var info = new ProcessStartInfo("node", [script, V1(0).ToString(), V1(1).ToString()]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var node = Process.Start(info)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var output = await node.StandardOutput.ReadToEndAsync(cts.Token);
        var errors = await node.StandardError.ReadToEndAsync(cts.Token);
        await node.WaitForExitAsync(cts.Token);
        Assert.That(node.ExitCode, Is.Zero, errors + _cluster.Logs());
        var result = JsonDocument.Parse(output).RootElement;

        var created = result.GetProperty("created");
        Assert.That((created.GetProperty("status").GetString(), created.GetProperty("text").GetString()), Is.EqualTo(("completed", Answer("hello from responses"))));
        Assert.That(created.GetProperty("usage").GetProperty("output_tokens").GetInt32(), Is.GreaterThan(0));
        Assert.That(created.GetProperty("instructions").GetString(), Is.EqualTo("Be brief."));
        Assert.That(MessagesTo("hello from responses"), Is.EqualTo(new[] { "system: Be brief.", "user: hello from responses" }));

        // Broken off after 10 events on one gateway, resumed after the 10th on the other: every event once, in order.
        var streamed = result.GetProperty("streamed");
        var sequence = streamed.GetProperty("sequence").EnumerateArray().Select(e => e.GetInt32()).ToList();
        Assert.That(sequence, Is.EqualTo(Enumerable.Range(0, sequence.Count)), "gap-free sequence numbers from 0");
        var types = streamed.GetProperty("types").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.That(types.Take(4), Is.EqualTo(new[] { "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added" }));
        Assert.That(types.TakeLast(4), Is.EqualTo(new[] { "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed" }));
        var expected = Answer("stream me in the background");
        Assert.That(streamed.GetProperty("deltas").GetString(), Is.EqualTo(expected));
        Assert.That(streamed.GetProperty("final").GetString(), Is.EqualTo(expected));
        Assert.That(streamed.GetProperty("retrievedText").GetString(), Is.EqualTo(expected));
        Assert.That((streamed.GetProperty("finalStatus").GetString(), streamed.GetProperty("retrievedStatus").GetString()), Is.EqualTo(("completed", "completed")));
        Assert.That(streamed.GetProperty("background").GetBoolean(), Is.True);
        Assert.That(_cluster.Provider.Behavior.Requests.Count(r => r.Messages[^1].Content == "stream me in the background"), Is.EqualTo(1));

        var cancelled = result.GetProperty("cancelled");
        Assert.That((cancelled.GetProperty("status").GetString(), cancelled.GetProperty("later").GetString(), cancelled.GetProperty("completedStays").GetString()),
            Is.EqualTo(("cancelled", "cancelled", "completed")));
        Assert.That(_cluster.Provider.Behavior.Requests.Where(r => r.Messages[^1].Content == "slow: cancel me").All(r => !r.Completed), Is.True,
            "a cancelled response's provider call never ran to its end");

        // The second turn was sent after the first exchange, from the session's memory.
        var turns = result.GetProperty("turns");
        Assert.That(turns.GetProperty("previous").GetString(), Is.EqualTo(turns.GetProperty("turn1").GetString()));
        Assert.That(turns.GetProperty("second").GetString(), Is.EqualTo(Answer("what is my name?")));
        Assert.That(MessagesTo("what is my name?"), Is.EqualTo(new[] { "user: my name is Ada", $"assistant: {Answer("my name is Ada")}", "user: what is my name?" }));

        // The model's call, the client's output for it, and the answer in words, sent with the call before it.
        var tool = result.GetProperty("tool");
        Assert.That(tool.GetProperty("call").GetProperty("name").GetString(), Is.EqualTo("get_weather"));
        Assert.That(tool.GetProperty("call").GetProperty("arguments").GetString(), Is.EqualTo("""{"city":"Paris"}"""));
        Assert.That(tool.GetProperty("answer").GetString(), Is.EqualTo(Answer("what is the weather in Paris?")));
        var last = _cluster.Provider.Behavior.Requests[^1];
        Assert.That(last.Messages.Select(m => m.Role), Is.EqualTo(new[] { "user", "assistant", "tool" }));
        Assert.That(last.Messages[^1].Content, Is.EqualTo("sunny, 21 C"));
        Assert.That(last.Body, Does.Contain(tool.GetProperty("call").GetProperty("call_id").GetString()), "the assistant's call and the tool's output carry the same call id");

        var refused = result.GetProperty("refused");
        Assert.That((refused.GetProperty("status").GetInt32(), refused.GetProperty("param").GetString()), Is.EqualTo((400, "prompt_cache_key")));
    }

    ResponsesClient Sdk(int gateway) => new(new ApiKeyCredential("unused"), new ResponsesClientOptions
    {
        Endpoint = V1(gateway),
        RetryPolicy = new ClientRetryPolicy(0),
    });

    [Test]
    public async Task The_dotnet_sdk_streams_in_the_background_resumes_after_N_elsewhere_continues_and_deletes()
    {
        var first = Sdk(0);
        var other = Sdk(1);
        var options = new CreateResponseOptions(Model, [ResponseItem.CreateUserMessageItem("stream from dotnet")]) { BackgroundModeEnabled = true, StreamingEnabled = true };
        var seen = new List<StreamingResponseUpdate>();
        await foreach (var update in await first.CreateResponseStreamingAsync(options))
        {
            seen.Add(update);
            if (seen.Count == 10)
                break;
        }
        var id = ((StreamingResponseCreatedUpdate)seen[0]).Response.Id;
        await foreach (var update in await other.GetResponseStreamingAsync(new GetResponseOptions(id) { StartingAfter = seen[^1].SequenceNumber, StreamingEnabled = true }))
            seen.Add(update);

        Assert.That(seen.Select(u => u.SequenceNumber), Is.EqualTo(Enumerable.Range(0, seen.Count)), "after N comes N+1, on the other gateway");
        Assert.That(string.Concat(seen.OfType<StreamingResponseOutputTextDeltaUpdate>().Select(u => u.Delta)), Is.EqualTo(Answer("stream from dotnet")));
        var completed = seen.OfType<StreamingResponseCompletedUpdate>().Single().Response;
        Assert.That((completed.Status, completed.GetOutputText()), Is.EqualTo(((ResponseStatus?)ResponseStatus.Completed, Answer("stream from dotnet"))));
        Assert.That(completed.Usage.OutputTokenCount, Is.GreaterThan(0));

        ResponseResult polled = await other.GetResponseAsync(id);
        Assert.That((polled.Status, polled.GetOutputText(), polled.BackgroundModeEnabled), Is.EqualTo(((ResponseStatus?)ResponseStatus.Completed, Answer("stream from dotnet"), (bool?)true)));

        ResponseResult next = await other.CreateResponseAsync(new CreateResponseOptions(Model, [ResponseItem.CreateUserMessageItem("and then?")]) { PreviousResponseId = id });
        Assert.That(next.PreviousResponseId, Is.EqualTo(id));
        Assert.That(MessagesTo("and then?"), Is.EqualTo(new[] { "user: stream from dotnet", $"assistant: {Answer("stream from dotnet")}", "user: and then?" }));

        ResponseDeletionResult deleted = await first.DeleteResponseAsync(next.Id);
        Assert.That(deleted.Deleted, Is.True);
        var gone = Assert.ThrowsAsync<ClientResultException>(() => other.GetResponseAsync(next.Id));
        Assert.That(gone!.Status, Is.EqualTo(404));
    }

    [Test]
    public async Task A_failure_after_output_ends_the_response_instead_of_splicing_a_retry()
    {
        _cluster.Provider.Behavior.FailMidStreamNext(afterTokens: 3);
        using var response = await _http.PostAsJsonAsync("/v1/responses", new { model = Model, input = "break mid-answer", stream = true, background = true });
        var events = SseEvents(await response.Content.ReadAsStringAsync());

        Assert.That(events.Select(e => e.GetProperty("sequence_number").GetInt32()), Is.EqualTo(Enumerable.Range(0, events.Count)));
        Assert.That(events[^1].GetProperty("type").GetString(), Is.EqualTo("response.failed"));
        Assert.That(events[^1].GetProperty("response").GetProperty("error").GetProperty("message").GetString(), Does.Contain("mid-answer"));
        var deltas = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.That(Answer("break mid-answer"), Does.StartWith(deltas).And.Not.EqualTo(deltas), "the first attempt's tokens, and no second answer after them");
        Assert.That(_cluster.Provider.Behavior.Requests.Count(r => r.Messages[^1].Content == "break mid-answer"), Is.EqualTo(1), "no retry was started");

        var id = events[0].GetProperty("response").GetProperty("id").GetString();
        var polled = await _http.GetFromJsonAsync<JsonElement>($"/v1/responses/{id}");
        Assert.That(polled.GetProperty("status").GetString(), Is.EqualTo("failed"));
    }

    [Test]
    public async Task Priority_comes_from_metadata_or_the_header_and_an_idempotency_key_answers_with_the_same_response()
    {
        using var byMetadata = await _http.PostAsJsonAsync("/v1/responses", new { model = Model, input = "urgent", background = true, metadata = new { priority = "7" } });
        var taskId = (await byMetadata.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!["resp_".Length..];
        Assert.That((await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(60))).GetProperty("priority").GetInt32(), Is.EqualTo(7));

        var key = Guid.NewGuid().ToString("N");
        async Task<JsonElement> PostAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses")
            {
                Content = JsonContent.Create(new { model = Model, input = "only once", background = true }),
            };
            request.Headers.Add("Idempotency-Key", key);
            request.Headers.Add("X-Priority", "-3");
            using var response = await _http.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            return await response.Content.ReadFromJsonAsync<JsonElement>();
        }
        var once = (await PostAsync()).GetProperty("id").GetString()!;
        Assert.That((await PostAsync()).GetProperty("id").GetString(), Is.EqualTo(once));
        var status = await _cluster.WaitForEndAsync(_http, once["resp_".Length..], TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("priority").GetInt32(), Is.EqualTo(-3));
        Assert.That(_cluster.Provider.Behavior.Requests.Count(r => r.Messages[^1].Content == "only once"), Is.EqualTo(1));
    }

    [Test]
    public async Task An_answer_cut_short_by_max_output_tokens_is_incomplete()
    {
        using var response = await _http.PostAsJsonAsync("/v1/responses", new { model = Model, input = "cut me short", stream = true, max_output_tokens = 3 });
        var events = SseEvents(await response.Content.ReadAsStringAsync());
        Assert.That(events[^1].GetProperty("type").GetString(), Is.EqualTo("response.incomplete"));
        var incomplete = events[^1].GetProperty("response");
        Assert.That((incomplete.GetProperty("status").GetString(), incomplete.GetProperty("incomplete_details").GetProperty("reason").GetString()),
            Is.EqualTo(("incomplete", "max_output_tokens")));
        Assert.That(incomplete.GetProperty("max_output_tokens").GetInt32(), Is.EqualTo(3));
        var polled = await _http.GetFromJsonAsync<JsonElement>($"/v1/responses/{incomplete.GetProperty("id").GetString()}");
        Assert.That(polled.GetProperty("status").GetString(), Is.EqualTo("incomplete"));
        Assert.That(polled.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString(),
            Is.EqualTo(string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()))));
    }

    /// <summary>The data of each event of a Responses stream, checking that its event name is its type.</summary>
    internal static List<JsonElement> SseEvents(string body)
    {
        var events = new List<JsonElement>();
        foreach (var block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n');
            var name = lines.FirstOrDefault(l => l.StartsWith("event: ", StringComparison.Ordinal))?["event: ".Length..];
            var data = lines.FirstOrDefault(l => l.StartsWith("data: ", StringComparison.Ordinal))?["data: ".Length..];
            if (data is null)
                continue;
            var element = JsonDocument.Parse(data).RootElement.Clone();
            Assert.That(name, Is.EqualTo(element.GetProperty("type").GetString()), block);
            events.Add(element);
        }
        return events;
    }
}
