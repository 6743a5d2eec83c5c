using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// What operators see: health endpoints that follow the workers' heartbeats, and GET /stats that tells waiting from
/// running work per queue, names the workers, and counts what finished, on every broker.
/// </summary>
[TestFixture("rabbitmq")]
[TestFixture("redis")]
[TestFixture("inmemory")]
public sealed class Operations(string broker)
{
    static readonly Dictionary<string, string> Settings = new()
    {
        ["CHAT_CONCURRENCY"] = "1",
        ["HEARTBEAT_SECONDS"] = "1",
    };

    [Test]
    public async Task Health_endpoints_report_liveness_readiness_and_workers_alive()
    {
        if (broker == "inmemory")
            Assert.Ignore("the single process is its own worker: covered by the stats test");
        await using var cluster = await Cluster.StartAsync($"health-{broker}", workers: 0, broker: broker, settings: Settings);
        using var http = cluster.Client();

        Assert.That((await http.GetAsync("/health/live")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // Ready once the bus has connected (an orchestrator sends no traffic until then).
        await WaitFor(async () => (await http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK, "the gateway is ready", cluster);
        var readyChecks = Checks(await http.GetStringAsync("/health/ready"));
        Assert.That(readyChecks.Keys, Does.Contain("redis").And.Contain("provider"));
        Assert.That(readyChecks.Keys, Does.Not.Contain("workers"), "a gateway takes work while workers restart");
        if (broker == "rabbitmq")
            Assert.That(readyChecks["masstransit-bus"], Is.EqualTo("Healthy"));
        Assert.That(readyChecks["redis"], Is.EqualTo("Healthy"), "the test Redis keeps everything (noeviction)");

        // A memory limit with an evicting policy could drop queued work and streams: readiness says so (degraded,
        // still 200: nothing is lost yet), and is healthy again once the policy is noeviction.
        await using (var admin = await cluster.Redis.ConnectAsync())
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            await server.ConfigSetAsync("maxmemory", "1gb");
            await server.ConfigSetAsync("maxmemory-policy", "allkeys-lru");
            var degraded = await http.GetAsync("/health/ready");
            var degradedBody = await degraded.Content.ReadAsStringAsync();
            Assert.That(degraded.StatusCode, Is.EqualTo(HttpStatusCode.OK), degradedBody);
            Assert.That(Checks(degradedBody)["redis"], Is.EqualTo("Degraded"), degradedBody);
            Assert.That(degradedBody, Does.Contain("maxmemory-policy allkeys-lru").And.Contain("set maxmemory-policy noeviction"));
            await server.ConfigSetAsync("maxmemory-policy", "noeviction");
            Assert.That(Checks(await http.GetStringAsync("/health/ready"))["redis"], Is.EqualTo("Healthy"), "a limit with noeviction refuses writes, never drops work");
            await server.ConfigSetAsync("maxmemory", "0");
        }

        var full = await http.GetAsync("/health/full");
        var fullBody = await full.Content.ReadAsStringAsync();
        Assert.That(full.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), fullBody);
        Assert.That(Checks(fullBody)["workers"], Is.EqualTo("Unhealthy"));
        // Beside the checks, the fields the Python original's /health/full had.
        var original = JsonDocument.Parse(fullBody).RootElement;
        Assert.That((original.GetProperty("status").GetString(), original.GetProperty("health").GetString()), Is.EqualTo(("unhealthy", "Unhealthy")));
        Assert.That(original.GetProperty("redis").GetString(), Is.EqualTo("connected"));
        Assert.That(original.GetProperty("celery_workers").GetString(), Is.EqualTo("no_workers"));
        Assert.That(original.GetProperty("openai").GetString(), Is.EqualTo("configured"));

        var healthFile = Path.Combine(Path.GetTempPath(), $"llmstream-health-{Guid.NewGuid():N}");
        try
        {
            var worker = await cluster.StartWorkerAsync(new Dictionary<string, string> { ["HEALTH_FILE"] = healthFile });
            await WaitFor(async () => Checks(await (await http.GetAsync("/health/full")).Content.ReadAsStringAsync())["workers"] == "Degraded",
                "a chat worker's heartbeat makes /health/full answer (degraded: no embedding worker yet)", cluster);
            Assert.That((await http.GetAsync("/health/full")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await cluster.StartEmbeddingWorkerAsync();
            await WaitFor(async () => Checks(await (await http.GetAsync("/health/full")).Content.ReadAsStringAsync())["workers"] == "Healthy", "both kinds of worker alive", cluster);
            var healthy = JsonDocument.Parse(await http.GetStringAsync("/health/full")).RootElement;
            Assert.That((healthy.GetProperty("status").GetString(), healthy.GetProperty("celery_workers").GetString()), Is.EqualTo(("ok", "active")));

            await WaitFor(() => Task.FromResult(File.Exists(healthFile)), "the worker touches HEALTH_FILE while healthy", cluster);
            var first = File.GetLastWriteTimeUtc(healthFile);
            await WaitFor(() => Task.FromResult(File.GetLastWriteTimeUtc(healthFile) > first), "and keeps touching it", cluster);

            // A worker that stops cleanly leaves the list at once; the full check turns unhealthy again.
            await worker.StopAsync();
            await WaitFor(async () => (await http.GetAsync("/health/full")).StatusCode == HttpStatusCode.ServiceUnavailable,
                "no chat worker left", cluster);
        }
        finally
        {
            File.Delete(healthFile);
        }
    }

    [Test]
    public async Task Stats_tell_waiting_from_running_work_name_the_workers_and_count_what_finished()
    {
        // One chat worker with one slot, and a provider slow enough that three chats queue up behind each other.
        var settings = new Dictionary<string, string>(Settings);
        await using var cluster = await Cluster.StartAsync($"stats-{broker}", broker: broker, settings: settings);
        cluster.Provider.Behavior.TokenDelay = TimeSpan.FromMilliseconds(400);
        using var http = cluster.Client();
        var before = await http.GetFromJsonAsync<JsonElement>("/stats");
        Assert.That(before.GetProperty("broker").GetString(), Is.EqualTo(broker));
        Assert.That(before.GetProperty("queues").EnumerateArray().Select(q => q.GetProperty("name").GetString()),
            Is.EqualTo(new[] { "high", "default", "low", "embeddings-high", "embeddings-default", "embeddings-low" }));
        var completedBefore = before.GetProperty("tasks").GetProperty("completed").GetInt64();

        var tasks = new List<string>();
        for (var i = 0; i < 3; i++)
            tasks.Add((await cluster.PostChatAsync(http, new { message = $"one two three four five {i}" })).TaskId);

        JsonElement busy = default;
        await WaitFor(async () =>
        {
            busy = await http.GetFromJsonAsync<JsonElement>("/stats");
            var queue = Queue(busy, "default");
            return queue.GetProperty("in_flight").GetInt64() == 1 && queue.GetProperty("waiting").GetInt64() == 2;
        }, "one chat running and two waiting on the default queue", cluster);
        var defaultQueue = Queue(busy, "default");
        Assert.That(defaultQueue.GetProperty("oldest_waiting_seconds").GetDouble(), Is.GreaterThan(0));
        Assert.That(defaultQueue.GetProperty("priority").GetString(), Is.EqualTo("default"));
        Assert.That(defaultQueue.GetProperty("work").GetString(), Is.EqualTo("chat"));
        Assert.That(Queue(busy, "high").GetProperty("waiting").GetInt64(), Is.Zero);
        var chatWorkers = busy.GetProperty("workers").EnumerateArray()
            .Where(w => w.GetProperty("work").EnumerateArray().Any(l => l.GetProperty("work").GetString() == "chat")).ToList();
        Assert.That(chatWorkers, Has.Count.EqualTo(1), busy.ToString());
        var chat = chatWorkers[0].GetProperty("work").EnumerateArray().Single(l => l.GetProperty("work").GetString() == "chat");
        Assert.That(chat.GetProperty("concurrency").GetInt32(), Is.EqualTo(1));
        Assert.That(chatWorkers[0].GetProperty("seconds_since_heartbeat").GetDouble(), Is.LessThan(30));
        Assert.That(chatWorkers[0].GetProperty("pid").GetInt32(), Is.EqualTo(broker == "inmemory" ? cluster.Gateway!.Pid : cluster.Workers[0].Pid));

        foreach (var taskId in tasks)
            Assert.That((await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        JsonElement after = default;
        await WaitFor(async () =>
        {
            after = await http.GetFromJsonAsync<JsonElement>("/stats");
            var queue = Queue(after, "default");
            return queue.GetProperty("in_flight").GetInt64() == 0 && queue.GetProperty("waiting").GetInt64() == 0;
        }, "the queue drains", cluster);
        Assert.That(Queue(after, "default").TryGetProperty("oldest_waiting_seconds", out var oldest) && oldest.ValueKind != JsonValueKind.Null,
            Is.False, "nothing waits any more");
        var counts = after.GetProperty("tasks");
        Assert.That(counts.GetProperty("completed").GetInt64(), Is.EqualTo(completedBefore + 3));
        Assert.That(counts.GetProperty("last_minute").GetProperty("completed").GetInt64(), Is.GreaterThanOrEqualTo(3));
        Assert.That(counts.GetProperty("last_minute").GetProperty("per_second").GetDouble(), Is.GreaterThan(0));
        Assert.That(counts.GetProperty("failed").GetInt64(), Is.Zero);
    }

    static JsonElement Queue(JsonElement stats, string name) =>
        stats.GetProperty("queues").EnumerateArray().Single(q => q.GetProperty("name").GetString() == name);

    static Dictionary<string, string> Checks(string healthJson)
    {
        using var document = JsonDocument.Parse(healthJson);
        return document.RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString()!);
    }

    static async Task WaitFor(Func<Task<bool>> condition, string what, Cluster cluster)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting until {what}\n{cluster.Logs()}");
            await Task.Delay(100);
        }
    }
}
