using LlmStream.Tests.EndToEnd;
using Microsoft.Playwright;

namespace LlmStream.Tests.Browser;

/// <summary>/docs in headless Chromium: the API reference renders from the gateway alone, nothing from another host.</summary>
[Category("Browser")]
public sealed class Api_reference_page
{
    [Test]
    public async Task Loads_nothing_from_another_host()
    {
        await using var cluster = await Cluster.StartAsync("browser-docs", broker: "inmemory");
        await using var chromium = await HeadlessChromium.LaunchAsync();
        var (context, page, errors) = await chromium.NewPageAsync();
        await using var _ = context;
        var requested = new List<string>();
        page.Request += (_, request) => { lock (requested) requested.Add(request.Url); };

        await page.GotoAsync(new Uri(cluster.GatewayUrl, "/docs").ToString(), new PageGotoOptions { WaitUntil = WaitUntilState.NetworkIdle });
        await Microsoft.Playwright.Assertions.Expect(page.GetByText("Stream a session's events (SSE)").First).ToBeVisibleAsync();
        await HeadlessChromium.ScreenshotAsync(page, "api-reference");

        var origin = cluster.GatewayUrl.GetLeftPart(UriPartial.Authority);
        string[] elsewhere;
        lock (requested)
            elsewhere = [.. requested.Where(url => !url.StartsWith(origin + "/", StringComparison.Ordinal) && !url.StartsWith("data:", StringComparison.Ordinal) && !url.StartsWith("blob:", StringComparison.Ordinal))];
        Assert.That(requested, Is.Not.Empty);
        Assert.That(elsewhere, Is.Empty, "requests to other hosts");
        // Links that lead off the machine, as a person sees them (hidden ones do not count).
        var links = await page.EvaluateAsync<string[]>("() => [...document.querySelectorAll('a[href^=\"http\"]')].filter(a => a.offsetParent !== null).map(a => a.href)");
        Assert.That(links.Where(href => !href.StartsWith(origin, StringComparison.Ordinal)), Is.Empty, "links that lead off the machine");
    }
}
