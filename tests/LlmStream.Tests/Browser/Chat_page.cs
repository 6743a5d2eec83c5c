using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.FakeOpenAI;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmStream.Tests.Browser;

/// <summary>
/// The chat page in headless Chromium against a real gateway process (make run's single-process shape: in-memory
/// bus, chat worker inside the gateway) whose model is the fake OpenAI-compatible provider, slowed per token.
/// </summary>
[Category("Browser")]
public sealed class Chat_page
{
    Cluster _cluster = null!;
    HeadlessChromium _chromium = null!;
    HttpClient _http = null!;
    FakeBehavior Model => _cluster.Provider.Behavior;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("browser-chat", broker: "inmemory", settings: new Dictionary<string, string>
        {
            ["LLM_MODEL_LIMITS"] = "gpt-4o-mini=0/0,second-model=0/0",
            ["RETRY_BASE_MS"] = "100",
        });
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

    [SetUp]
    public void ResetModel() => Model.Reset();

    static async Task SendAsync(IPage page, string message)
    {
        await page.Locator("#message").FillAsync(message);
        await page.Locator("#send").ClickAsync();
    }

    static ILocator Answer(IPage page, int index = 0) => page.Locator("#conversation > li.assistant").Nth(index);

    async Task<JsonElement> TaskStatusAsync(ILocator answer) =>
        await _http.GetFromJsonAsync<JsonElement>($"/chat/{await answer.GetAttributeAsync("data-task-id")}");

    [Test]
    public async Task Sends_a_message_with_priority_and_model_and_shows_the_whole_answer_as_markdown()
    {
        Model.Reply = _ => "Here is **bold**, *italic* and `code`.\n\n- one\n- two\n\n```\nvar x = 1;\n```\n\nSee [the docs](https://example.com/docs).";
        Model.TokenDelay = TimeSpan.FromMilliseconds(10);
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(_cluster.GatewayUrl.ToString());

        await Expect(page.Locator("#model option")).ToHaveCountAsync(3); // default + the gateway's two chat models
        await page.Locator("#model").SelectOptionAsync("second-model");
        await page.Locator("#priority").SelectOptionAsync(new SelectOptionValue { Label = "high" });
        await SendAsync(page, "Show me markdown");

        var answer = Answer(page);
        await Expect(answer).ToHaveAttributeAsync("data-state", "done");
        var body = answer.Locator(".body");
        await Expect(body.Locator("strong")).ToHaveTextAsync("bold");
        await Expect(body.Locator("em")).ToHaveTextAsync("italic");
        await Expect(body.Locator("p code")).ToHaveTextAsync("code");
        await Expect(body.Locator("ul > li")).ToHaveTextAsync(["one", "two"]);
        await Expect(body.Locator("pre > code")).ToHaveTextAsync("var x = 1;");
        await Expect(body.Locator("a")).ToHaveAttributeAsync("href", "https://example.com/docs");
        await Expect(answer.Locator(".state")).ToContainTextAsync("done");
        await Expect(page.Locator("#conversation > li.user").First).ToHaveTextAsync("Show me markdown");
        Assert.That(await HeadlessChromium.AnswerStatesAsync(page), Is.EqualTo(new[] { "sending", "queued", "started", "done" }));

        var status = await TaskStatusAsync(answer);
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("priority").GetInt32(), Is.EqualTo(8));
        Assert.That(status.GetProperty("model").GetString(), Is.EqualTo("second-model"));
        Assert.That(Model.Requests.Last().Model, Is.EqualTo("second-model"));

        // The conversation stays on the page and goes on in the same session.
        Model.Reply = message => "Second answer to " + message;
        await SendAsync(page, "and again");
        await Expect(Answer(page, 1)).ToHaveAttributeAsync("data-state", "done");
        await Expect(Answer(page, 1).Locator(".body")).ToHaveTextAsync("Second answer to and again");
        await Expect(page.Locator("#conversation > li")).ToHaveCountAsync(4);
        await Expect(body.Locator("strong")).ToHaveTextAsync("bold");
        var second = await TaskStatusAsync(Answer(page, 1));
        Assert.That(second.GetProperty("session_id").GetString(), Is.EqualTo(status.GetProperty("session_id").GetString()));

        await HeadlessChromium.ScreenshotAsync(page, "chat-answer");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Shows_html_from_the_model_and_the_user_as_text()
    {
        const string hostile = "<img src=x onerror=alert(1)> and **still bold** then <script>window.pwned = 1</script>\n\n" +
                               "- <img src=z onerror=alert(4)>\n\n# <iframe src=javascript:alert(5)></iframe>\n\n[click](javascript:alert(2))";
        Model.Reply = _ => hostile;
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        var dialogs = 0;
        page.Dialog += (_, dialog) => { dialogs++; _ = dialog.DismissAsync(); };
        await page.GotoAsync(_cluster.GatewayUrl.ToString());

        const string userText = "<b>me</b><img src=y onerror=alert(3)>";
        await SendAsync(page, userText);
        var answer = Answer(page);
        await Expect(answer).ToHaveAttributeAsync("data-state", "done");

        var body = answer.Locator(".body");
        await Expect(body.Locator("p").First).ToHaveTextAsync("<img src=x onerror=alert(1)> and still bold then <script>window.pwned = 1</script>");
        await Expect(body.Locator("p strong")).ToHaveTextAsync("still bold");
        await Expect(body.Locator("li")).ToHaveTextAsync("<img src=z onerror=alert(4)>");
        await Expect(body.Locator("h1")).ToHaveTextAsync("<iframe src=javascript:alert(5)></iframe>");
        await Expect(body.Locator("p").Last).ToHaveTextAsync("[click](javascript:alert(2))");
        await Expect(page.Locator("#conversation > li.user .body")).ToHaveTextAsync(userText);
        await Expect(page.Locator("#conversation :is(img, script, iframe, b, a)")).ToHaveCountAsync(0);
        Assert.That(await page.EvaluateAsync<bool>("() => window.pwned === undefined"), Is.True, "no script ran");
        Assert.That(dialogs, Is.Zero, "no alert opened");
        await HeadlessChromium.ScreenshotAsync(page, "chat-html-as-text");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Shows_a_retry_and_keeps_only_the_new_attempts_text()
    {
        var reply = string.Join(' ', Enumerable.Range(1, 30).Select(i => $"piece{i}"));
        Model.Reply = _ => reply;
        Model.TokenDelay = TimeSpan.FromMilliseconds(20);
        Model.FailMidStreamNext(afterTokens: 5); // the first attempt breaks after five tokens reached the page
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(_cluster.GatewayUrl.ToString());

        await SendAsync(page, "Try twice");
        var answer = Answer(page);
        await Expect(answer).ToHaveAttributeAsync("data-state", "done");
        Assert.That(await answer.Locator(".body").TextContentAsync(), Is.EqualTo(reply), "the first attempt's text is gone");
        Assert.That(await HeadlessChromium.AnswerStatesAsync(page), Is.EqualTo(new[] { "sending", "queued", "started", "retrying", "done" }));
        Assert.That((await TaskStatusAsync(answer)).GetProperty("attempt").GetInt32(), Is.EqualTo(2));
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Cancels_a_running_answer()
    {
        var reply = string.Join(' ', Enumerable.Range(1, 200).Select(i => $"word{i}"));
        Model.Reply = _ => reply;
        Model.TokenDelay = TimeSpan.FromMilliseconds(100);
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(_cluster.GatewayUrl.ToString());

        await SendAsync(page, "Say a lot");
        var answer = Answer(page);
        await Expect(answer.Locator(".body")).ToContainTextAsync("word3");
        await Expect(page.Locator("#send")).ToBeDisabledAsync();
        await page.Locator("#cancel").ClickAsync();

        await Expect(answer).ToHaveAttributeAsync("data-state", "cancelled");
        await Expect(answer.Locator(".state")).ToHaveTextAsync("cancelled");
        Assert.That(await HeadlessChromium.AnswerStatesAsync(page), Is.EqualTo(new[] { "sending", "queued", "started", "cancelling", "cancelled" }));
        await Expect(page.Locator("#send")).ToBeEnabledAsync();
        var shown = await answer.Locator(".body").TextContentAsync();
        Assert.That(reply, Does.StartWith(shown!.Trim()), "the text shown is the start of the answer");
        Assert.That(shown, Does.Not.Contain("word200"));
        Assert.That((await TaskStatusAsync(answer)).GetProperty("status").GetString(), Is.EqualTo("cancelled"));
        Assert.That(await _cluster.Provider.WaitUntilAsync(m => m.CancelledRequests == 1, TimeSpan.FromSeconds(30)), Is.True,
            "the provider call was stopped");
        await HeadlessChromium.ScreenshotAsync(page, "chat-cancelled");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Resumes_a_dropped_stream_with_last_event_id_without_repeating_text()
    {
        var reply = string.Join(' ', Enumerable.Range(1, 120).Select(i => $"part{i}"));
        Model.Reply = _ => reply;
        Model.TokenDelay = TimeSpan.FromMilliseconds(80);
        await using var proxy = new TcpProxy(_cluster.GatewayUrl);
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        var streamRequests = new List<IRequest>();
        page.Request += (_, request) => { if (request.Url.Contains("/stream/", StringComparison.Ordinal)) lock (streamRequests) streamRequests.Add(request); };
        await page.GotoAsync(proxy.Url.ToString());

        await SendAsync(page, "Keep going");
        var answer = Answer(page);
        await Expect(answer.Locator(".body")).ToContainTextAsync("part5");
        Assert.That(await answer.GetAttributeAsync("data-state"), Is.EqualTo("started"), "the answer is still streaming when the network drops");
        proxy.DropAll();

        await Expect(answer).ToHaveAttributeAsync("data-state", "done", new() { Timeout = 60_000 });
        Assert.That(await answer.Locator(".body").TextContentAsync(), Is.EqualTo(reply), "every token exactly once, in order");
        Assert.That(await answer.GetAttributeAsync("data-reconnects"), Is.Not.EqualTo("0"));
        Assert.That(proxy.Dropped, Is.GreaterThan(0));

        IRequest[] requests;
        lock (streamRequests)
            requests = [.. streamRequests];
        Assert.That(requests, Has.Length.GreaterThanOrEqualTo(2), "the page opened the stream again");
        var resumed = await requests[^1].AllHeadersAsync();
        Assert.That(resumed.TryGetValue("last-event-id", out var lastEventId), Is.True, "the reconnect says where it stopped");
        Assert.That(lastEventId, Does.Match(@"^\d+-\d+$"));
        var status = await TaskStatusAsync(answer);
        Assert.That(status.GetProperty("result").GetString(), Is.EqualTo(reply));
        await HeadlessChromium.ScreenshotAsync(page, "chat-resumed");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Keeps_the_conversation_over_a_reload_and_follows_the_running_answer_on()
    {
        var reply = string.Join(' ', Enumerable.Range(1, 120).Select(i => $"bit{i}"));
        Model.Reply = message => message == "first" ? "First answer." : reply;
        Model.TokenDelay = TimeSpan.FromMilliseconds(60);
        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(_cluster.GatewayUrl.ToString());
        await SendAsync(page, "first");
        await Expect(Answer(page)).ToHaveAttributeAsync("data-state", "done");

        await SendAsync(page, "second");
        await Expect(Answer(page, 1).Locator(".body")).ToContainTextAsync("bit5");
        Assert.That(await Answer(page, 1).GetAttributeAsync("data-state"), Is.EqualTo("started"), "still streaming when the page reloads");
        await page.ReloadAsync();

        await Expect(Answer(page, 1)).ToHaveAttributeAsync("data-state", "done", new() { Timeout = 60_000 });
        Assert.That(await Answer(page, 1).Locator(".body").TextContentAsync(), Is.EqualTo(reply), "every token exactly once, in order");
        await Expect(page.Locator("#conversation > li.user")).ToHaveTextAsync(["first", "second"]);
        await Expect(Answer(page).Locator(".body")).ToHaveTextAsync("First answer.");
        await Expect(page.Locator("#send")).ToBeEnabledAsync();

        // The next message still belongs to the same session.
        Model.Reply = _ => "Third.";
        await SendAsync(page, "third");
        await Expect(Answer(page, 2)).ToHaveAttributeAsync("data-state", "done");
        var first = await TaskStatusAsync(Answer(page));
        var third = await TaskStatusAsync(Answer(page, 2));
        Assert.That(third.GetProperty("session_id").GetString(), Is.EqualTo(first.GetProperty("session_id").GetString()));
        await HeadlessChromium.ScreenshotAsync(page, "chat-after-reload");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Fits_a_phone_screen()
    {
        Model.Reply = _ => "A phone-sized answer with a long code line:\n\n```\n" + new string('x', 300) + "\n```\n\nand " +
                           string.Join(' ', Enumerable.Range(1, 40).Select(i => $"w{i}")) + " https://example.com/" + new string('y', 120);
        var (context, page, errors) = await _chromium.NewPageAsync(390, 844);
        await using var _ = context;
        await page.GotoAsync(_cluster.GatewayUrl.ToString());
        await SendAsync(page, "A question typed on a phone, long enough to wrap over several lines of the narrow screen " + new string('z', 80));
        await Expect(Answer(page)).ToHaveAttributeAsync("data-state", "done");

        var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        Assert.That(overflow, Is.LessThanOrEqualTo(0), "no horizontal scrolling on a 390 px wide screen");
        await Expect(page.Locator("#send")).ToBeInViewportAsync();
        await HeadlessChromium.ScreenshotAsync(page, "chat-phone");

        await page.GotoAsync(new Uri(_cluster.GatewayUrl, "/dashboard.html").ToString());
        await Expect(page.Locator("#broker")).ToHaveTextAsync("inmemory");
        overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        Assert.That(overflow, Is.LessThanOrEqualTo(0), "the dashboard does not scroll sideways either");
        await HeadlessChromium.ScreenshotAsync(page, "dashboard-phone");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public async Task Works_from_another_origin_with_an_api_key()
    {
        // The page comes from one origin (like the compose web service) and calls a gateway on another, named in config.js.
        var pageOrigin = $"http://localhost:{_cluster.GatewayUrl.Port}";
        await _cluster.StartGatewayAsync(new Dictionary<string, string>
        {
            ["CORS_ORIGINS"] = pageOrigin,
            ["API_KEYS"] = "browser:page-secret-key",
        });
        using var api = _cluster.Client(1);
        var apiBase = api.BaseAddress!.ToString().TrimEnd('/');
        Model.Reply = message => "Cross-origin answer to " + message;

        var (context, page, errors) = await _chromium.NewPageAsync();
        await using var _ = context;
        await page.RouteAsync("**/config.js", route => route.FulfillAsync(new RouteFulfillOptions
        {
            ContentType = "application/javascript",
            Body = $"window.LLMSTREAM_API_BASE = \"{apiBase}\";",
        }));
        await page.GotoAsync(pageOrigin + "/");

        // Without the key the gateway refuses, and the page says why.
        await SendAsync(page, "no key");
        await Expect(Answer(page)).ToHaveAttributeAsync("data-state", "error");
        await Expect(Answer(page).Locator(".state")).ToContainTextAsync("API key");

        await page.Locator(".settings summary").ClickAsync();
        await page.Locator("#api-key").FillAsync("page-secret-key");
        await page.Locator("#settings button").ClickAsync();
        await Expect(page.Locator("#model option")).ToHaveCountAsync(3);
        await SendAsync(page, "with key");
        await Expect(Answer(page, 1)).ToHaveAttributeAsync("data-state", "done");
        await Expect(Answer(page, 1).Locator(".body")).ToHaveTextAsync("Cross-origin answer to with key");
        Assert.That(await page.EvaluateAsync<string>("() => localStorage.getItem('llmstream.api_key')"), Is.EqualTo("page-secret-key"));

        await page.GotoAsync(pageOrigin + "/dashboard.html");
        await Expect(page.Locator("#rate-limits tbody tr")).Not.ToHaveCountAsync(0);
        await Expect(page.Locator("#status")).ToContainTextAsync("updated");
        Assert.That(errors, Is.Empty);
    }
}
