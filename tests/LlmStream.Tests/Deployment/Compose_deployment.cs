using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Providers;
using LlmStream.Tests.Browser;
using LlmStream.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmStream.Tests.Deployment;

/// <summary>
/// The compose deployment as an operator runs it, on a real Docker engine: images built from deploy/Dockerfile,
/// `make up WORKERS=2`, `make scale 4`, a chat worker killed while it generates, `make status`, `make logs chat-worker`,
/// the monitoring profile's Prometheus, and `make down` then `make up` with the volumes kept. The images the compose
/// file pulls elsewhere are stand-ins built here from Debian packages (build/standin-images.sh). The steps run in order
/// on one deployment: each starts from what the one before left.
/// </summary>
[NonParallelizable]
public sealed class Compose_deployment
{
    const string RabbitMqUser = "llmstream";
    const string RabbitMqPassword = "compose-spec-password";
    static readonly string[] ChatQueues = ["high", "default", "low"];
    static readonly string[] EmbeddingQueues = ["embeddings-high", "embeddings-default", "embeddings-low"];
    static readonly string[] ProductImages = ["gateway", "chat-worker", "embedding-worker", "web"];

    ComposeDeployment _deployment = null!;
    HttpClient _http = null!;
    (string TaskId, string SessionId, string Message) _firstChat;

    [OneTimeSetUp]
    public async Task Build_the_images_and_make_up()
    {
        if (await ComposeDeployment.EngineMissingAsync() is { } reason)
            Assert.Ignore("skipped: " + reason);
        _deployment = await ComposeDeployment.PrepareAsync("llmstream-spec", RabbitMqUser, RabbitMqPassword);

        var clock = Stopwatch.StartNew();
        (await _deployment.MakeAsync("images")).EnsureSuccess("make images");
        TestContext.Progress.WriteLine($"make images: the four product images built from deploy/Dockerfile in {clock.Elapsed.TotalSeconds:0} s");
        var sizes = await ComposeDeployment.RunAsync("docker", ["image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", "--filter", $"reference=llmstream-*:{_deployment.Tag}"]);
        TestContext.Progress.WriteLine(sizes.EnsureSuccess("docker image ls").Output.TrimEnd());
        TestContext.Progress.WriteLine((await ComposeDeployment.RunAsync(ComposeDeployment.Script, ["sizes"])).Output.TrimEnd());

        clock.Restart();
        (await _deployment.MakeAsync("up", "WORKERS=2")).EnsureSuccess("make up WORKERS=2");
        TestContext.Progress.WriteLine($"make up WORKERS=2 returned in {clock.Elapsed.TotalSeconds:0} s");
        _http = new HttpClient { BaseAddress = _deployment.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) };
    }

    [OneTimeTearDown]
    public async Task Remove_the_deployment()
    {
        _http?.Dispose();
        if (_deployment is not null)
            await _deployment.DisposeAsync();
    }

    [Test, Order(1)]
    public async Task The_service_images_run_as_a_non_root_user_and_hold_no_sdk()
    {
        foreach (var image in ProductImages.Take(3).Select(name => $"llmstream-{name}:{_deployment.Tag}"))
        {
            var user = (await ComposeDeployment.RunAsync("docker", ["run", "--rm", "--entrypoint", "id", image, "-u"])).EnsureSuccess($"id in {image}").Output.Trim();
            Assert.That(user, Is.Not.EqualTo("0").And.Not.Empty, $"{image} runs as uid {user}");
            var sdks = (await ComposeDeployment.RunAsync("docker", ["run", "--rm", "--entrypoint", "dotnet", image, "--list-sdks"])).EnsureSuccess($"dotnet --list-sdks in {image}");
            Assert.That(sdks.Output.Trim(), Is.Empty, $"{image} holds no .NET SDK");
        }
    }

    [Test, Order(2)]
    public async Task Make_up_starts_every_container_healthy_and_a_chat_streams_to_done()
    {
        var containers = await _deployment.WaitHealthyAsync(7, TimeSpan.FromMinutes(4));
        Assert.That(containers.Select(c => c.Service).Order(),
            Is.EqualTo(new[] { "chat-worker", "chat-worker", "embedding-worker", "gateway", "rabbitmq", "redis", "web" }));

        var message = "hello from the compose spec";
        var (taskId, sessionId) = await PostChatAsync(message);
        _firstChat = (taskId, sessionId, message);
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(60));
        Assert.That(events.Select(e => e.Event).Where(e => e != "token"), Is.EqualTo(new[] { "queued", "started", "done" }));
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens(message))));
    }

    [Test, Order(3)]
    public async Task The_web_container_serves_the_chat_page_that_talks_to_the_gateway()
    {
        var pageUrl = $"http://localhost:{_deployment.WebPort}";
        using var web = new HttpClient();
        Assert.That(await web.GetStringAsync($"http://127.0.0.1:{_deployment.WebPort}/config.js"),
            Does.Contain($"window.LLMSTREAM_API_BASE = \"http://localhost:{_deployment.GatewayPort}\""));

        await using var chromium = await HeadlessChromium.LaunchAsync();
        var (context, page, errors) = await chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(pageUrl + "/");
        await page.Locator("#message").FillAsync("from the web container");
        await page.Locator("#send").ClickAsync();
        var answer = page.Locator("#conversation > li.assistant").First;
        await Expect(answer).ToHaveAttributeAsync("data-state", "done", new LocatorAssertionsToHaveAttributeOptions { Timeout = 60_000 });
        await Expect(answer.Locator(".body")).ToContainTextAsync("You said: \"from the web container\"");
        await HeadlessChromium.ScreenshotAsync(page, "compose-chat-page");
        Assert.That(errors, Is.Empty);
    }

    [Test, Order(4)]
    public async Task The_management_api_lists_the_work_queues_with_their_arguments_and_the_two_workers()
    {
        var queues = await QueuesAsync();
        Assert.That(queues.Keys, Is.SupersetOf(ChatQueues.Concat(EmbeddingQueues)));
        foreach (var name in ChatQueues.Concat(EmbeddingQueues))
        {
            var queue = queues[name];
            Assert.That(queue.GetProperty("durable").GetBoolean(), Is.True, name);
            Assert.That(queue.GetProperty("arguments").GetProperty("x-max-priority").GetInt32(), Is.EqualTo(10), name);
        }
        // The management API's figures are refreshed every few seconds.
        await Until(async () => ConsumersOf(await QueuesAsync(), ChatQueues) == 2, "2 consumers (one per chat worker) on high, default and low", TimeSpan.FromSeconds(30));
        await Until(async () => ConsumersOf(await QueuesAsync(), EmbeddingQueues) == 1, "the embedding worker consumes its three queues", TimeSpan.FromSeconds(30));

        // The two consumers of `default` are two connections, one from each chat worker container.
        var consumers = (await _deployment.ManagementAsync("/api/consumers/%2F")).EnumerateArray()
            .Where(c => c.GetProperty("queue").GetProperty("name").GetString() == "default")
            .Select(c => c.GetProperty("channel_details").GetProperty("peer_host").GetString()).Distinct().ToList();
        Assert.That(consumers, Has.Count.EqualTo(2));
    }

    [Test, Order(5)]
    public async Task Make_scale_4_adds_two_consumers_recreates_nothing_and_loses_no_chat()
    {
        var before = (await _deployment.ContainersAsync()).ToDictionary(c => c.Id, c => c.StartedAt);
        using var posting = new CancellationTokenSource();
        var poster = Task.Run(async () =>
        {
            var posted = new List<(string TaskId, string SessionId)>();
            while (!posting.IsCancellationRequested)
            {
                posted.Add(await PostChatAsync($"during the scale {posted.Count}"));
                await Task.Delay(150);
            }
            return posted;
        });

        (await _deployment.MakeAsync("scale", "4")).EnsureSuccess("make scale 4");
        await Until(async () => ConsumersOf(await QueuesAsync(), ChatQueues) == 4, "4 consumers on high, default and low", TimeSpan.FromMinutes(2));
        await Until(async () => (await ChatWorkersInStatsAsync()) == 4, "/stats lists 4 chat workers", TimeSpan.FromMinutes(1));
        await Task.Delay(1000);
        posting.Cancel();
        var chats = await poster;

        var after = (await _deployment.ContainersAsync()).ToDictionary(c => c.Id, c => c.StartedAt);
        foreach (var (id, startedAt) in before)
        {
            Assert.That(after.ContainsKey(id), $"container {id[..12]} is still there");
            Assert.That(after[id], Is.EqualTo(startedAt), $"container {id[..12]} was not restarted");
        }
        Assert.That((await _deployment.ContainersAsync("chat-worker")).Count(c => c.State == "running"), Is.EqualTo(4));
        foreach (var (taskId, _) in chats)
            Assert.That((await WaitForEndAsync(taskId)).GetProperty("status").GetString(), Is.EqualTo("completed"), taskId);
        TestContext.Progress.WriteLine($"make scale 4: {chats.Count} chats posted during the change, all completed");
    }

    [Test, Order(6)]
    public async Task A_killed_generating_worker_hands_its_chat_to_another_with_one_answer()
    {
        // A long message: the simulated model answers it with ~90 tokens at 40 a second, time enough to find and kill its worker.
        var message = string.Join(' ', Enumerable.Range(1, 48).Select(i => $"w{i:00}"));
        var expected = string.Concat(SimulatedChatClient.Tokens(message));
        var (taskId, sessionId) = await PostChatAsync(message);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var response = await _http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var events = new List<SseEvent>();
        ComposeContainer? victim = null;
        await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
        {
            events.Add(e);
            if (victim is null && e.Event == "token")
            {
                victim = await GeneratingWorkerAsync(taskId);
                (await ComposeDeployment.RunAsync("docker", ["kill", victim.Id])).EnsureSuccess("docker kill");
                TestContext.Progress.WriteLine($"killed {victim.Name} at token {events.Count(x => x.Event == "token")} of {SimulatedChatClient.Tokens(message).Count}");
            }
            if (e.Event is "done" or "error" or "cancelled")
                break;
        }

        var context = string.Join(' ', events.Select(e => e.Event == "token" ? "." : e.Event));
        Assert.That(victim, Is.Not.Null);
        var attempts = events.Where(e => e.Event == "started").Select(e => StreamText.DataOf(e).GetProperty("attempt").GetInt32()).ToList();
        Assert.That(attempts, Is.EqualTo(new[] { 1, 2 }), "the kill hit the generation: " + context);
        Assert.That(StreamText.Of(events, taskId), Is.EqualTo(expected), context);
        var tail = await SseClient.ReadAllAsync(_http, $"/stream/{sessionId}", TimeSpan.FromSeconds(20));
        Assert.That(tail.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), "one terminal event in the whole stream");
        var status = await WaitForEndAsync(taskId);
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(expected));

        var others = (await _deployment.ContainersAsync("chat-worker")).Where(c => c.Id != victim!.Id).ToList();
        var second = new List<string>();
        foreach (var worker in others)
        {
            if ((await _deployment.LogsAsync(worker)).Split('\n').Any(l => l.Contains($"Generating task {taskId}") && l.Contains("attempt 2")))
                second.Add(worker.Name);
        }
        Assert.That(second, Has.Count.EqualTo(1), "attempt 2 ran on one of the other workers");
        TestContext.Progress.WriteLine($"attempt 2 ran on {second[0]}");

        // A killed container stays down (restart: unless-stopped counts `docker kill` as a stop); make scale brings it back.
        (await _deployment.MakeAsync("scale", "4")).EnsureSuccess("make scale 4, after the kill");
    }

    [Test, Order(7)]
    public async Task Make_status_and_make_logs_print_what_readme_says()
    {
        // make status: the containers with their state and health, then the gateway's /health/full.
        var containers = await _deployment.WaitHealthyAsync(9, TimeSpan.FromMinutes(2));
        var status = (await _deployment.MakeAsync("status")).EnsureSuccess("make status").Output;
        foreach (var container in containers)
            Assert.That(status, Does.Contain(container.Name), status);
        Assert.That(status, Does.Contain("(HTTP 200)").And.Contain("\"chat_workers\": 4").And.Contain("\"status\": \"Healthy\""), status);

        // make logs chat-worker: follows the chat workers' logs, and only theirs.
        var info = new ProcessStartInfo("make", ["--no-print-directory", "logs", "chat-worker"])
        {
            WorkingDirectory = RepoPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var (name, value) in _deployment.Environment)
            info.Environment[name] = value;
        // docker-compose v1 is Python: into a pipe it writes in blocks, not lines, unless told otherwise.
        info.Environment["PYTHONUNBUFFERED"] = "1";
        using var make = Process.Start(info)!;
        var prefixes = new HashSet<string>();
        var lines = new List<string>();
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (prefixes.Count < 4 && await make.StandardOutput.ReadLineAsync(cts.Token) is { } colored)
            {
                // "chat-worker_2       | [10:49:34.432 INF] Application started...", the prefix in colour.
                var line = System.Text.RegularExpressions.Regex.Replace(colored, "\x1b\\[[0-9;]*m", "");
                lines.Add(line);
                var bar = line.IndexOf('|');
                if (bar > 0)
                    prefixes.Add(line[..bar].Trim());
            }
            Assert.That(make.HasExited, Is.False, "make logs follows the logs until stopped");
        }
        finally
        {
            make.Kill(entireProcessTree: true);
        }
        Assert.That(prefixes, Has.Count.EqualTo(4), string.Join('\n', lines.TakeLast(20)));
        Assert.That(prefixes, Has.All.Contains("chat-worker"), "only the chat workers' lines");
        Assert.That(lines, Has.Some.Contains("Application started"));
    }

    [Test, Order(8)]
    public async Task The_monitoring_profile_prometheus_scrapes_the_gateway()
    {
        // The profile's collector and Jaeger have no stand-ins here (build/standin-images.sh says why): Prometheus alone.
        (await _deployment.ComposeAsync("up", "-d", "--no-deps", "prometheus")).EnsureSuccess("compose up prometheus");
        using var prometheus = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_deployment.PrometheusPort}"), Timeout = TimeSpan.FromSeconds(10) };
        await Until(async () =>
        {
            try
            {
                var result = await prometheus.GetFromJsonAsync<JsonElement>("/api/v1/query?query=" + Uri.EscapeDataString("up{job=\"gateway\"}"));
                var series = result.GetProperty("data").GetProperty("result");
                return series.GetArrayLength() == 1 && series[0].GetProperty("value")[1].GetString() == "1";
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "Prometheus scraped the gateway (up{job=\"gateway\"} == 1)", TimeSpan.FromSeconds(90));
        var chats = await prometheus.GetFromJsonAsync<JsonElement>("/api/v1/query?query=" + Uri.EscapeDataString("count({job=\"gateway\",__name__=~\"llmstream_.*\"})"));
        Assert.That(chats.GetProperty("data").GetProperty("result").GetArrayLength(), Is.EqualTo(1), "the gateway's llmstream_* series are in Prometheus");
    }

    [Test, Order(9)]
    public async Task Make_down_then_make_up_finds_the_queued_work_and_the_finished_streams()
    {
        (await _deployment.MakeAsync("scale", "0")).EnsureSuccess("make scale 0");
        var queued = new List<(string TaskId, string SessionId)>();
        for (var i = 0; i < 3; i++)
            queued.Add(await PostChatAsync($"queued across make down {i}"));
        await Until(async () => (await QueuesAsync())["default"].GetProperty("messages").GetInt32() >= 3, "3 chats wait in RabbitMQ", TimeSpan.FromSeconds(30));

        (await _deployment.MakeAsync("down")).EnsureSuccess("make down");
        Assert.That(await _deployment.ContainersAsync(), Is.Empty, "make down removes every container");
        var volumes = (await ComposeDeployment.RunAsync("docker", ["volume", "ls", "-q", "--filter", $"label=com.docker.compose.project={_deployment.Project}"])).Output;
        Assert.That(volumes, Does.Contain("rabbitmq-data").And.Contain("redis-data"), "the volumes stay");

        (await _deployment.MakeAsync("up", "WORKERS=2")).EnsureSuccess("make up WORKERS=2, again");
        await _deployment.WaitHealthyAsync(7, TimeSpan.FromMinutes(4));
        foreach (var (taskId, _) in queued)
            Assert.That((await WaitForEndAsync(taskId)).GetProperty("status").GetString(), Is.EqualTo("completed"), $"queued {taskId} ran after make up");

        var first = await WaitForEndAsync(_firstChat.TaskId);
        Assert.That(first.GetProperty("result").GetString(), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens(_firstChat.Message))));
        var events = await SseClient.ReadAllAsync(_http, $"/stream/{_firstChat.SessionId}", TimeSpan.FromSeconds(20));
        Assert.That(events.Select(e => e.Event).Where(e => e != "token"), Is.EqualTo(new[] { "queued", "started", "done" }), "the first chat's stream, from before make down");
    }

    Task<(string TaskId, string SessionId)> PostChatAsync(string message) => Chats.PostAsync(_http, new { message });

    Task<JsonElement> WaitForEndAsync(string taskId) => Chats.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(90));

    async Task<Dictionary<string, JsonElement>> QueuesAsync() =>
        (await _deployment.ManagementAsync("/api/queues/%2F")).EnumerateArray().ToDictionary(q => q.GetProperty("name").GetString()!);

    /// <summary>The consumer count the given queues share, or -1 while they differ.</summary>
    static int ConsumersOf(Dictionary<string, JsonElement> queues, string[] names)
    {
        var counts = names.Select(n => queues.TryGetValue(n, out var q) && q.TryGetProperty("consumers", out var c) ? c.GetInt32() : -1).Distinct().ToList();
        return counts.Count == 1 ? counts[0] : -1;
    }

    async Task<int> ChatWorkersInStatsAsync()
    {
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        return stats.GetProperty("workers").EnumerateArray().Count(w => w.GetProperty("service").GetString() == "LlmStream.ChatWorker");
    }

    /// <summary>The chat worker container that logged it is generating the task (the line may trail the first token a little).</summary>
    async Task<ComposeContainer> GeneratingWorkerAsync(string taskId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var holders = new List<ComposeContainer>();
            foreach (var worker in (await _deployment.ContainersAsync("chat-worker")).Where(c => c.State == "running"))
            {
                if ((await _deployment.LogsAsync(worker)).Contains($"Generating task {taskId}", StringComparison.Ordinal))
                    holders.Add(worker);
            }
            if (holders.Count == 1)
                return holders[0];
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"{holders.Count} chat workers say they generate {taskId}");
            await Task.Delay(50);
        }
    }

    static async Task Until(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"not within {timeout.TotalSeconds:0} s: {what}");
            await Task.Delay(500);
        }
    }
}
