using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// A user of the Python original brings its .env: each of its settings is read as ours (a start-up line each) or named
/// in one start-up warning with what replaces it, and an old and a new name that disagree stop the start in one line.
/// </summary>
public sealed class Settings_of_the_original
{
    [Test]
    public async Task Are_read_as_ours_or_named_in_one_warning()
    {
        var port = FreePort.Next();
        await using var gateway = ServiceProcess.StartDotnet("gateway-original-env", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            // From the original's .env.example.
            ["OPENAI_DEFAULT_MODEL"] = "gpt-4o",
            ["CELERY_CONCURRENCY"] = "20",
            ["CELERY_MAX_RETRIES"] = "3",
            ["CELERY_RESULT_EXPIRES"] = "3600",
            ["OPENAI_TIMEOUT"] = "600",
            ["CELERY_QUEUES"] = "high,default,low",
            ["CELERY_POOL"] = "threads",
            ["UVICORN_WORKERS"] = "4",
            ["CELERY_RATE_LIMIT"] = "100/s",
            ["FLOWER_PORT"] = "5555",
        });
        var url = new Uri($"http://127.0.0.1:{port}");
        await gateway.WaitForHttpAsync(new Uri(url, "/health/live"), TimeSpan.FromSeconds(60));

        foreach (var (old, @new) in new[] { ("OPENAI_DEFAULT_MODEL", "LLM_MODEL=gpt-4o"), ("CELERY_CONCURRENCY", "CHAT_CONCURRENCY=20"),
                     ("CELERY_MAX_RETRIES", "RETRY_LIMIT=3"), ("CELERY_RESULT_EXPIRES", "RESULT_TTL=3600"), ("OPENAI_TIMEOUT", "LLM_TIMEOUT=600") })
            Assert.That(gateway.Output, Does.Contain($"{old}, the original's setting, is read as {@new}"), gateway.Output);
        var warnings = gateway.Output.Split('\n').Where(l => l.Contains("Settings of the original not read here", StringComparison.Ordinal)).ToList();
        Assert.That(warnings, Has.Count.EqualTo(1), "one warning line");
        Assert.That(warnings[0], Does.Contain("CELERY_QUEUES: not needed").And.Contain("CELERY_POOL:").And.Contain("UVICORN_WORKERS:")
            .And.Contain("CELERY_RATE_LIMIT: use LLM_RPM and LLM_TPM").And.Contain("FLOWER_PORT:"));

        // Read for real: the default model, and the single process's chat slots.
        using var http = new HttpClient { BaseAddress = url };
        var accepted = await (await http.PostAsJsonAsync("/chat", new { message = "which model?" })).Content.ReadFromJsonAsync<JsonElement>();
        var task = await http.GetFromJsonAsync<JsonElement>($"/chat/{accepted.GetProperty("task_id").GetString()}");
        Assert.That(task.GetProperty("model").GetString(), Is.EqualTo("gpt-4o"));
        var health = await http.GetFromJsonAsync<JsonElement>("/health/full");
        var workers = health.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "workers");
        Assert.That(workers.GetProperty("data").GetProperty("chat_slots").GetInt32(), Is.EqualTo(20), health.GetRawText());
    }

    [Test]
    public async Task That_disagree_with_ours_stop_the_start_in_one_line()
    {
        await using var gateway = ServiceProcess.StartDotnet("gateway-original-conflict", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["PORT"] = FreePort.Next().ToString(CultureInfo.InvariantCulture),
            ["CELERY_CONCURRENCY"] = "100",
            ["CHAT_CONCURRENCY"] = "32",
        });
        Assert.That(await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(1));
        var fatal = gateway.Output.Split('\n').Where(l => l.Contains("FTL", StringComparison.Ordinal)).ToList();
        Assert.That(fatal, Has.Count.EqualTo(1), gateway.Output);
        Assert.That(fatal[0], Does.Contain("CELERY_CONCURRENCY=100").And.Contain("CHAT_CONCURRENCY=32").And.Contain("disagree"));
    }
}
