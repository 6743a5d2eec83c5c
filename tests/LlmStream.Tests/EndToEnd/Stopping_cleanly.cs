using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// SIGTERM while a generation hangs at the provider (which never answers) and more work waits: the process starts
/// nothing new, lets the running work go on for SHUTDOWN_TIMEOUT, then cuts it, hands its message back to the broker
/// (another worker runs it as a new attempt) and leaves by itself, with no stack trace in its log.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Stopping_a_chat_worker(string broker)
{
    const int Bound = 3;

    [Test]
    public async Task Starts_nothing_new_cuts_the_hung_generation_at_the_bound_and_another_worker_runs_both()
    {
        await using var cluster = await Cluster.StartAsync($"stop-{broker}", workers: 1, broker: broker, settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "1",
            ["SHUTDOWN_TIMEOUT"] = Bound.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["REDIS_CLAIM_IDLE_SECONDS"] = "2",
        });
        using var http = cluster.Client();
        cluster.Provider.Behavior.HangNext();
        var (hung, hungSession) = await cluster.PostChatAsync(http, new { message = "hang at the provider" });
        await Until(() => cluster.Provider.Behavior.ChatRequests == 1, cluster);
        var (waiting, waitingSession) = await cluster.PostChatAsync(http, new { message = "wait for a slot" });
        await Task.Delay(500); // RabbitMQ: delivered into the worker's prefetch, waiting there for the slot

        var worker = cluster.Workers[0];
        var (exitCode, took) = await worker.TerminateAsync(TimeSpan.FromSeconds(Bound + 20));
        TestContext.Progress.WriteLine($"{broker}: the chat worker left {took.TotalSeconds:0.0} s after SIGTERM (SHUTDOWN_TIMEOUT={Bound})");
        Assert.That(exitCode, Is.EqualTo(0), worker.Output);
        Assert.That(cluster.Provider.Behavior.ChatRequests, Is.EqualTo(1), "the waiting task was not started by the stopping worker");
        Assert.That(worker.StackTraceLines, Is.Empty, worker.Output);
        Assert.That(worker.Output, Does.Contain("Stopping: no new work starts here"));

        await cluster.StartWorkerAsync();
        foreach (var (taskId, sessionId, attempts) in new[] { (hung, hungSession, new[] { 1, 2 }), (waiting, waitingSession, new[] { 1 }) })
        {
            var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), cluster.Logs());
            var events = await SseClient.ReadAllAsync(http, $"/stream/{sessionId}", TimeSpan.FromSeconds(10));
            Assert.That(events.Where(e => e.Event == "started").Select(e => StreamText.DataOf(e).GetProperty("attempt").GetInt32()), Is.EqualTo(attempts),
                "the cut generation runs again as a new attempt; the other one once");
            Assert.That(events.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1));
        }
    }

    internal static async Task Until(Func<bool> condition, Cluster cluster, int seconds = 30)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"not reached within {seconds} s\n{cluster.Logs()}");
            await Task.Delay(50);
        }
    }
}

public sealed class Stopping_an_embedding_worker
{
    [Test]
    public async Task Leaves_within_the_bound_and_the_batch_completes_on_another_worker()
    {
        await using var cluster = await Cluster.StartAsync("stop-embed", workers: 0, settings: new Dictionary<string, string> { ["SHUTDOWN_TIMEOUT"] = "3" });
        using var http = cluster.Client();
        var worker = await cluster.StartEmbeddingWorkerAsync();
        cluster.Provider.Behavior.EmbeddingDelay = TimeSpan.FromHours(1);
        var accepted = await (await http.PostAsJsonAsync("/embeddings", new { texts = new[] { "one", "two" } })).Content.ReadFromJsonAsync<JsonElement>();
        var taskId = accepted.GetProperty("task_id").GetString()!;
        await Stopping_a_chat_worker.Until(() => cluster.Provider.Behavior.EmbeddingRequests >= 1, cluster);

        var (exitCode, took) = await worker.TerminateAsync(TimeSpan.FromSeconds(25));
        TestContext.Progress.WriteLine($"the embedding worker left {took.TotalSeconds:0.0} s after SIGTERM (SHUTDOWN_TIMEOUT=3)");
        Assert.That(exitCode, Is.EqualTo(0), worker.Output);
        Assert.That(worker.StackTraceLines, Is.Empty, worker.Output);

        cluster.Provider.Behavior.EmbeddingDelay = TimeSpan.Zero;
        await cluster.StartEmbeddingWorkerAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        JsonElement status;
        do
        {
            await Task.Delay(100);
            status = await http.GetFromJsonAsync<JsonElement>($"/embeddings/{taskId}");
        }
        while (status.GetProperty("status").GetString() is not ("completed" or "failed") && DateTime.UtcNow < deadline);
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), cluster.Logs());
    }
}

/// <summary>A gateway lets its readers go at once (they resume elsewhere), gives waiting /v1 requests the bound, and leaves.</summary>
public sealed class Stopping_a_gateway
{
    [Test]
    public async Task Lets_stream_readers_go_answers_a_waiting_openai_request_and_leaves_within_the_bound()
    {
        await using var cluster = await Cluster.StartAsync("stop-gateway", workers: 1, settings: new Dictionary<string, string> { ["SHUTDOWN_TIMEOUT"] = "3" });
        using var http = cluster.Client();
        cluster.Provider.Behavior.HangNext(2);
        var (_, sessionId) = await cluster.PostChatAsync(http, new { message = "hang" });
        using var stream = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead);
        var reading = SseClient.ReadAsync(await stream.Content.ReadAsStreamAsync()).ToListAsync().AsTask();
        var openAi = http.PostAsJsonAsync("/v1/chat/completions", new { stream = true, messages = new[] { new { role = "user", content = "hang too" } } });
        await Stopping_a_chat_worker.Until(() => cluster.Provider.Behavior.ChatRequests == 2, cluster);

        var gateway = cluster.Gateway!;
        var stopping = gateway.TerminateAsync(TimeSpan.FromSeconds(25));
        var events = await reading.WaitAsync(TimeSpan.FromSeconds(2));
        Assert.That(events.Select(e => e.Event), Is.EqualTo(new[] { "queued", "started" }), "the reader is let go at once, to resume on another gateway");
        var answer = await openAi.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That((int)answer.StatusCode, Is.EqualTo(503), "no token had gone out: the waiting request gets a retryable status");
        Assert.That(answer.Headers.RetryAfter, Is.Not.Null);

        var (exitCode, took) = await stopping;
        TestContext.Progress.WriteLine($"the gateway left {took.TotalSeconds:0.0} s after SIGTERM (SHUTDOWN_TIMEOUT=3)");
        Assert.That(exitCode, Is.EqualTo(0), gateway.Output);
        Assert.That(gateway.StackTraceLines, Is.Empty, gateway.Output);
    }
}

/// <summary>make run's process: queued work lives in it alone, so the log says what is dropped.</summary>
public sealed class Stopping_the_single_process_default
{
    [Test]
    public async Task Starts_nothing_new_says_what_is_dropped_and_leaves_within_the_bound()
    {
        await using var cluster = await Cluster.StartAsync("stop-single", broker: "inmemory", settings: new Dictionary<string, string>
        {
            ["CHAT_CONCURRENCY"] = "1",
            ["SHUTDOWN_TIMEOUT"] = "3",
        });
        using var http = cluster.Client();
        cluster.Provider.Behavior.HangNext(3);
        for (var i = 0; i < 3; i++)
            await cluster.PostChatAsync(http, new { message = $"chat {i}" });
        await Stopping_a_chat_worker.Until(() => cluster.Provider.Behavior.ChatRequests == 1, cluster);

        var gateway = cluster.Gateway!;
        var (exitCode, took) = await gateway.TerminateAsync(TimeSpan.FromSeconds(25));
        TestContext.Progress.WriteLine($"the single process left {took.TotalSeconds:0.0} s after SIGTERM (SHUTDOWN_TIMEOUT=3)");
        Assert.That(exitCode, Is.EqualTo(0), gateway.Output);
        Assert.That(cluster.Provider.Behavior.ChatRequests, Is.EqualTo(1), "no queued chat started while it stopped");
        Assert.That(gateway.Output, Does.Contain("are dropped"));
        Assert.That(gateway.StackTraceLines, Is.Empty, gateway.Output);
    }
}
