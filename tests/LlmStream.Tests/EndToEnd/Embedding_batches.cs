using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.FakeOpenAI;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// POST /embeddings through the broker to embedding worker processes and the fake provider: batches larger than a
/// chunk, a chunk that fails once, a worker killed half-way. Chunks of 3 texts, 2 at a time.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Embedding_batches(string broker)
{
    const int ChunkTexts = 3;
    const int Dimensions = 8; // the fake provider's default
    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"embed-{broker}", workers: 0, broker: broker, settings: new Dictionary<string, string>
        {
            ["EMBEDDING_CHUNK_TEXTS"] = ChunkTexts.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["EMBEDDING_CHUNK_PARALLELISM"] = "2",
            ["RETRY_BASE_MS"] = "100",
            ["REDIS_CLAIM_IDLE_SECONDS"] = "2",
        });
        await _cluster.StartEmbeddingWorkerAsync();
        await _cluster.StartEmbeddingWorkerAsync();
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    [SetUp]
    public void ResetProvider() => _cluster.Provider.Behavior.Reset();

    static List<string> Texts(string prefix, int count) => [.. Enumerable.Range(0, count).Select(i => $"{prefix} text number {i}")];

    [Test]
    public async Task A_batch_larger_than_one_chunk_comes_back_complete_and_in_order()
    {
        var texts = Texts($"ordered-{broker}", 11);
        var result = await EmbedAsync(texts);

        Assert.That(result.GetProperty("progress").GetProperty("chunks_total").GetInt32(), Is.EqualTo(4));
        Assert.That(result.GetProperty("progress").GetProperty("chunks_done").GetInt32(), Is.EqualTo(4));
        Assert.That(result.GetProperty("dimensions").GetInt32(), Is.EqualTo(Dimensions));
        Assert.That(result.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), Is.EqualTo(texts.Sum(FakeBehavior.CountWords)));
        AssertVectors(result, texts);
        Assert.That(_cluster.Provider.Behavior.EmbeddingBatchSizes.Order(), Is.EqualTo(new[] { 2, 3, 3, 3 }), "cut into chunks of at most 3");
    }

    [Test]
    public async Task The_openai_endpoint_answers_in_openai_format_in_input_order()
    {
        var texts = Texts($"v1-{broker}", 7);
        var response = await _http.PostAsJsonAsync("/v1/embeddings", new { input = texts, model = "text-embedding-3-small" });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That(body.GetProperty("object").GetString(), Is.EqualTo("list"));
        Assert.That(body.GetProperty("data")[0].GetProperty("object").GetString(), Is.EqualTo("embedding"));
        AssertVectors(body, texts);
    }

    [Test]
    public async Task A_chunk_that_fails_once_is_retried_alone()
    {
        _cluster.Provider.Behavior.FailNextEmbeddings(500);
        var texts = Texts($"retry-{broker}", 12);
        var result = await EmbedAsync(texts);

        AssertVectors(result, texts);
        var requests = _cluster.Provider.Behavior.EmbeddingInputs;
        Assert.That(requests, Has.Count.EqualTo(5), "4 chunks and one retry");
        var repeated = requests.GroupBy(r => r[0]).Where(g => g.Count() > 1).ToList();
        Assert.That(repeated, Has.Count.EqualTo(1), "only the failed chunk was sent again");
        Assert.That(result.GetProperty("attempt").GetInt32(), Is.EqualTo(1), "the batch itself was not redelivered");
    }

    [Test]
    public async Task Cancelling_a_running_batch_stops_its_provider_requests_and_keeps_it_cancelled()
    {
        _cluster.Provider.Behavior.EmbeddingDelay = TimeSpan.FromMilliseconds(400);
        var taskId = await PostAsync(Texts($"cancel-{broker}", 24)); // 8 chunks, 2 at a time: about 1.6 s of work

        JsonElement status;
        do
        {
            await Task.Delay(50);
            status = await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}");
        } while (status.GetProperty("progress").GetProperty("chunks_done").GetInt32() < 1);
        var cancel = await _http.DeleteAsync($"/embeddings/{taskId}");
        Assert.That(cancel.StatusCode, Is.EqualTo(HttpStatusCode.OK), await cancel.Content.ReadAsStringAsync());
        var requestsAtCancel = _cluster.Provider.Behavior.EmbeddingRequests;

        // Well past the time the whole batch would have taken.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var after = await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}");
        Assert.That(after.GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        Assert.That(after.GetProperty("progress").GetProperty("chunks_done").GetInt32(), Is.LessThan(8));
        Assert.That(_cluster.Provider.Behavior.EmbeddingRequests, Is.LessThanOrEqualTo(requestsAtCancel + 2),
            "at most the chunks that were starting as the cancel landed (EMBEDDING_CHUNK_PARALLELISM=2)");
        Assert.That(_cluster.Provider.Behavior.EmbeddingRequests, Is.LessThan(8), "the batch did not run to its end");
        Assert.That((await _http.DeleteAsync($"/embeddings/{taskId}")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "cancelling again changes nothing");
        Assert.That(_cluster.Logs(), Does.Contain($"Embedding task {taskId} was cancelled").Or.Contain($"Embedding task {taskId} ended elsewhere"));

        _cluster.Provider.Behavior.EmbeddingDelay = TimeSpan.Zero;
        var done = await PostAsync(Texts($"done-{broker}", 2));
        Assert.That((await WaitAsync(done, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));
        var conflict = await _http.DeleteAsync($"/embeddings/{done}");
        Assert.That(conflict.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That((await _http.DeleteAsync("/embeddings/0123456789abcdef0123456789abcdef")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_killed_workers_batch_completes_on_another_without_redoing_stored_chunks()
    {
        _cluster.Provider.Behavior.EmbeddingDelay = TimeSpan.FromMilliseconds(400);
        var texts = Texts($"crash-{broker}", 24); // 8 chunks, 2 at a time: about 1.6 s of work
        var taskId = await PostAsync(texts);

        JsonElement status;
        do
        {
            await Task.Delay(50);
            status = await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}");
        } while (status.GetProperty("progress").GetProperty("chunks_done").GetInt32() < 1);
        var victim = _cluster.Workers.Single(w => w.Output.Contains(taskId, StringComparison.Ordinal));
        victim.Kill();
        var requestsBeforeKill = _cluster.Provider.Behavior.EmbeddingInputs.Count;
        var storedBeforeKill = (await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}")).GetProperty("progress").GetProperty("chunks_done").GetInt32();
        Assert.That(storedBeforeKill, Is.InRange(1, 7), "killed half-way");

        var result = await WaitAsync(taskId, TimeSpan.FromSeconds(60));
        Assert.That(result.GetProperty("status").GetString(), Is.EqualTo("completed"), result.ToString());
        Assert.That(result.GetProperty("attempt").GetInt32(), Is.EqualTo(2));
        AssertVectors(result, texts);
        // Chunks, by their texts: a request the killed worker had sent may reach the provider after the kill (it was in
        // the socket), but it is for a chunk that was not stored, which the other worker runs too.
        var chunksAfterKill = _cluster.Provider.Behavior.EmbeddingInputs.Skip(requestsBeforeKill).Select(inputs => string.Join('\n', inputs)).Distinct().Count();
        Assert.That(chunksAfterKill, Is.EqualTo(8 - storedBeforeKill), "the other worker ran only the chunks that were not stored");
        await _cluster.StartEmbeddingWorkerAsync(); // the next test has two workers again
    }

    [Test]
    public async Task Bad_batches_get_a_400_naming_the_field_and_nothing_is_queued()
    {
        async Task<JsonElement> Rejected(object body)
        {
            var response = await _http.PostAsJsonAsync("/embeddings", body);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToString());
            return problem.GetProperty("errors");
        }

        Assert.That((await Rejected(new { texts = new[] { "fine", "" } })).TryGetProperty("texts[1]", out _));
        Assert.That((await Rejected(new { texts = Array.Empty<string>() })).TryGetProperty("texts", out _));
        Assert.That((await Rejected(new { texts = new object[] { "a", 3 } })).TryGetProperty("texts[1]", out _));
        Assert.That((await Rejected(new { texts = new[] { "a" }, priority = 99 })).TryGetProperty("priority", out _));
        Assert.That((await Rejected(new { texts = new[] { string.Join(' ', Enumerable.Repeat("token", 9000)) } })).TryGetProperty("texts[0]", out _));
        Assert.That((await Rejected(new { text = new[] { "a" } })).TryGetProperty("text", out _));
        await Task.Delay(300);
        Assert.That(_cluster.Provider.Behavior.EmbeddingRequests, Is.Zero);
    }

    async Task<string> PostAsync(IReadOnlyList<string> texts)
    {
        var response = await _http.PostAsJsonAsync("/embeddings", new { texts });
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), accepted.ToString());
        return accepted.GetProperty("task_id").GetString()!;
    }

    async Task<JsonElement> EmbedAsync(IReadOnlyList<string> texts)
    {
        var result = await WaitAsync(await PostAsync(texts), TimeSpan.FromSeconds(60));
        Assert.That(result.GetProperty("status").GetString(), Is.EqualTo("completed"), result.ToString());
        return result;
    }

    async Task<JsonElement> WaitAsync(string taskId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var status = await _http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}");
            if (status.GetProperty("status").GetString() is "completed" or "failed" || DateTime.UtcNow > deadline)
                return status;
            await Task.Delay(50);
        }
    }

    static void AssertVectors(JsonElement result, IReadOnlyList<string> texts)
    {
        var data = result.GetProperty("data");
        Assert.That(data.GetArrayLength(), Is.EqualTo(texts.Count));
        for (var i = 0; i < texts.Count; i++)
        {
            Assert.That(data[i].GetProperty("index").GetInt32(), Is.EqualTo(i));
            var vector = data[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.That(vector, Is.EqualTo(FakeBehavior.EmbeddingOf(texts[i], Dimensions)).Within(1e-6f), $"vector {i} belongs to text {i}");
        }
    }

    [Test]
    public async Task A_model_the_provider_does_not_serve_is_its_404_with_one_call()
    {
        _cluster.Provider.Behavior.KnownModels = ["text-embedding-3-small"];
        var response = await _http.PostAsJsonAsync("/v1/embeddings", new { model = "text-embedding-9", input = new[] { "a", "b" } });
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), error.ToString());
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("model_not_found"));
        Assert.That(response.Headers.GetValues("x-should-retry"), Is.EqualTo(new[] { "false" }), "OpenAI's SDKs must not call again");
        Assert.That(_cluster.Provider.Behavior.EmbeddingRequests, Is.EqualTo(1), "a 4xx is not retried by the worker either");
    }
}
