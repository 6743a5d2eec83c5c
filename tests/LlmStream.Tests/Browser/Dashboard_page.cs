using System.Net.Http.Json;
using LlmStream.Tests.EndToEnd;
using static Microsoft.Playwright.Assertions;

namespace LlmStream.Tests.Browser;

/// <summary>The dashboard in headless Chromium, reading /stats from a gateway on the Redis broker.</summary>
[Category("Browser")]
public sealed class Dashboard_page
{
    [Test]
    public async Task Shows_a_queued_task_and_draws_the_chart()
    {
        // No chat worker: what is posted stays in the queue.
        await using var cluster = await Cluster.StartAsync("browser-dash", workers: 0, broker: "redis");
        await using var chromium = await HeadlessChromium.LaunchAsync();
        using var http = cluster.Client();
        var (context, page, errors) = await chromium.NewPageAsync();
        await using var _ = context;
        await page.GotoAsync(new Uri(cluster.GatewayUrl, "/dashboard.html?interval=500").ToString());
        await Expect(page.Locator("#broker")).ToHaveTextAsync("redis");
        await Expect(page.Locator("#queues tr[data-queue='default'] td.waiting")).ToHaveTextAsync("0");

        var response = await http.PostAsJsonAsync("/chat", new { message = "wait in the queue", priority = 0 });
        Assert.That((int)response.StatusCode, Is.EqualTo(202), await response.Content.ReadAsStringAsync());

        await Expect(page.Locator("#queues tr[data-queue='default'] td.waiting")).ToHaveTextAsync("1");
        await Expect(page.Locator("#queues tr[data-queue='high'] td.waiting")).ToHaveTextAsync("0");
        await Expect(page.Locator("#waiting")).ToHaveTextAsync("1");
        await Expect(page.Locator("#dead-letters")).ToHaveTextAsync("0");
        await Expect(page.Locator("#rate-limits tbody tr")).Not.ToHaveCountAsync(0);
        await Expect(page.Locator("#status")).ToContainTextAsync("updated");

        // The chart has drawn its lines: the waiting colour is on the canvas once the queue had something in it.
        var waitingPixels = await page.EvaluateAsync<int>(@"() => {
            const canvas = document.getElementById('chart');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4)
                if (data[i] === 0x2f && data[i + 1] === 0x6f && data[i + 2] === 0xed && data[i + 3] === 255) count++;
            return count;
        }");
        Assert.That(waitingPixels, Is.GreaterThan(0), "the chart draws the waiting line");
        await HeadlessChromium.ScreenshotAsync(page, "dashboard-queued");
        Assert.That(errors, Is.Empty);
    }
}
