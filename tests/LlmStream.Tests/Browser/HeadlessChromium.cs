using LlmStream.Tests.Infrastructure;
using Microsoft.Playwright;

namespace LlmStream.Tests.Browser;

/// <summary>
/// Debian's chromium (build/install-test-deps.sh installs it), driven by Microsoft.Playwright without any browser
/// download. LLMSTREAM_CHROMIUM overrides the executable's path.
/// </summary>
public sealed class HeadlessChromium : IAsyncDisposable
{
    readonly IPlaywright _playwright;

    HeadlessChromium(IPlaywright playwright, IBrowser browser)
    {
        _playwright = playwright;
        Browser = browser;
    }

    public IBrowser Browser { get; }

    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable("LLMSTREAM_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    /// <summary>Where screenshots go: TestResults/screenshots at the repository root (make test wipes TestResults first).</summary>
    public static string ScreenshotFolder { get; } = Path.Combine(RepoPaths.Root, "TestResults", "screenshots");

    public static async Task<HeadlessChromium> LaunchAsync()
    {
        if (!File.Exists(ExecutablePath))
            Assert.Fail($"chromium is not installed at {ExecutablePath}: run build/install-test-deps.sh (or set LLMSTREAM_CHROMIUM)");
        Assertions.SetDefaultExpectTimeout(30_000);
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                ChromiumSandbox = false,
                Args = ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
                Timeout = 60_000,
            });
            return new HeadlessChromium(playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>A fresh context (own storage, no shared cookies) and page; uncaught page errors are collected.</summary>
    public async Task<(IBrowserContext Context, IPage Page, List<string> Errors)> NewPageAsync(int width = 1280, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        context.SetDefaultTimeout(30_000);
        // Every state an answer goes through, in order (window.answerStates), however briefly it lasts.
        await context.AddInitScriptAsync("""
            window.answerStates = [];
            new MutationObserver((changes) => {
              for (const change of changes) window.answerStates.push(change.target.getAttribute("data-state"));
            }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
            """);
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, error) => { lock (errors) errors.Add(error); };
        return (context, page, errors);
    }

    /// <summary>The states the page's answers have shown, duplicates in a row removed.</summary>
    public static async Task<string[]> AnswerStatesAsync(IPage page)
    {
        var states = await page.EvaluateAsync<string[]>("() => window.answerStates");
        return [.. states.Where((state, i) => i == 0 || states[i - 1] != state)];
    }

    /// <summary>Saves a full-page screenshot as TestResults/screenshots/{name}.png.</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        Directory.CreateDirectory(ScreenshotFolder);
        var path = Path.Combine(ScreenshotFolder, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        TestContext.AddTestAttachment(path);
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright.Dispose();
    }
}
