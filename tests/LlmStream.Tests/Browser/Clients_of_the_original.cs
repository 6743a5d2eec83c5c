using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace LlmStream.Tests.Browser;

/// <summary>
/// Clients written for the Python original read each event's data: its <c>type</c> (status, chunk, complete, error),
/// a chunk's <c>content</c>, and stop at complete or error. Its page reads them with EventSource's onmessage, which
/// sees only unnamed events: STREAM_EVENT_NAMES=false sends them so. Both ways are driven here as those clients do.
/// </summary>
[Category("Browser")]
[TestFixture(true)]
[TestFixture(false)]
public sealed class Clients_of_the_original(bool eventNames)
{
    Cluster _cluster = null!;
    HeadlessChromium _chromium = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync($"original-clients-{eventNames}".ToLowerInvariant(), broker: "inmemory",
            settings: new Dictionary<string, string> { ["STREAM_EVENT_NAMES"] = eventNames ? "true" : "false" });
        _cluster.Provider.Behavior.Reply = message => "Bonjour, " + message + " !";
        _http = _cluster.Client();
        _chromium = await HeadlessChromium.LaunchAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_chromium is not null)
            await _chromium.DisposeAsync();
        _http?.Dispose();
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    [Test]
    public async Task A_client_reading_data_lines_gets_status_chunks_and_complete()
    {
        // As the original's own tests read /stream: data lines as JSON, content summed, stop at complete, error or timeout.
        var (taskId, sessionId) = await _cluster.PostChatAsync(_http, new { message = "data lines" });
        using var response = await _http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        var types = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
                continue;
            var data = JsonDocument.Parse(line[5..].Trim()).RootElement;
            types.Add(data.GetProperty("type").GetString()!);
            if (data.TryGetProperty("content", out var content))
                text.Append(content.GetString());
            if (types[^1] is "complete" or "error" or "timeout")
                break;
        }
        Assert.That(types.Distinct(), Is.EqualTo(new[] { "status", "chunk", "complete" }));
        Assert.That(text.ToString(), Is.EqualTo("Bonjour, data lines !"));
        var status = await _cluster.WaitForEndAsync(_http, taskId, TimeSpan.FromSeconds(30));
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(text.ToString()));
    }

    [Test]
    public async Task Health_and_stats_carry_the_fields_its_clients_read()
    {
        // GET /health: JSON with status ok (its tests and run.sh read that), or text for a text/plain probe.
        var live = await _http.GetFromJsonAsync<JsonElement>("/health");
        Assert.That((live.GetProperty("status").GetString(), live.GetProperty("backend").GetString()), Is.EqualTo(("ok", "inmemory")));
        using var plain = new HttpRequestMessage(HttpMethod.Get, "/health");
        plain.Headers.Accept.ParseAdd("text/plain");
        using var text = await _http.SendAsync(plain);
        Assert.That((text.Content.Headers.ContentType!.MediaType, await text.Content.ReadAsStringAsync()), Is.EqualTo(("text/plain", "Healthy")));

        // GET /health/full: status ok or degraded, redis, celery_workers, openai beside the checks.
        var full = await _http.GetFromJsonAsync<JsonElement>("/health/full");
        Assert.That(full.GetProperty("status").GetString(), Is.AnyOf("ok", "degraded"));
        Assert.That(full.GetProperty("celery_workers").GetString(), Is.EqualTo("active"), "the single process is its own worker");
        Assert.That(full.GetProperty("openai").GetString(), Is.EqualTo("configured"));
        Assert.That(full.GetProperty("redis").GetString(), Does.StartWith("not used"));
        Assert.That(full.GetProperty("checks").GetArrayLength(), Is.GreaterThan(0));

        // GET /stats: queues and status ok (what its tests read), active_tasks.
        var stats = await _http.GetFromJsonAsync<JsonElement>("/stats");
        Assert.That(stats.GetProperty("status").GetString(), Is.EqualTo("ok"));
        Assert.That(stats.TryGetProperty("queues", out _), Is.True);
        Assert.That(stats.GetProperty("active_tasks").GetInt32(), Is.GreaterThanOrEqualTo(0));
    }

    [Test]
    public async Task An_event_source_reading_onmessage_shows_the_answer_only_with_unnamed_events()
    {
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        var gateway = _http.BaseAddress!.ToString().TrimEnd('/');
        await page.GotoAsync(gateway + "/");
        // The original page's way: POST /chat with the message, then EventSource on /stream; onmessage sums content and
        // closes at complete, error or timeout. A named listener for done says when our named stream has ended.
        var result = await page.EvaluateAsync<JsonElement>("""
            async (base) => {
              const res = await fetch(`${base}/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: 'EventSource' }) });
              const data = await res.json();
              return await new Promise((resolve) => {
                let text = '', messages = 0;
                const source = new EventSource(`${base}/stream/${data.session_id}`);
                const end = (how) => { source.close(); resolve({ text, messages, how }); };
                source.onmessage = (event) => {
                  messages++;
                  const parsed = JSON.parse(event.data);
                  if (parsed.content) text += parsed.content;
                  if (['complete', 'error', 'timeout'].includes(parsed.type)) end(parsed.type);
                };
                source.addEventListener('done', () => end('named done'));
                source.onerror = () => end('connection error');
              });
            }
            """, gateway);
        if (eventNames)
        {
            Assert.That(result.GetProperty("messages").GetInt32(), Is.EqualTo(0), "named events never reach onmessage");
            Assert.That(result.GetProperty("how").GetString(), Is.EqualTo("named done"));
        }
        else
        {
            Assert.That(result.GetProperty("how").GetString(), Is.EqualTo("complete"));
            Assert.That(result.GetProperty("text").GetString(), Is.EqualTo("Bonjour, EventSource !"));
        }
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Our_chat_page_works_either_way()
    {
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(_http.BaseAddress!.ToString());
        await page.Locator("#message").FillAsync("our page");
        await page.Locator("#send").ClickAsync();
        var answer = page.Locator("#conversation > li.assistant").First;
        await Expect(answer).ToHaveAttributeAsync("data-state", "done");
        await Expect(answer.Locator(".body")).ToHaveTextAsync("Bonjour, our page !");
        Assert.That(errors, Is.Empty);
    }
}
