using System.Net;
using LlmStream.Tests.Gateway;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Browser;

/// <summary>CORS_ORIGINS: which pages served elsewhere may call the API from a browser.</summary>
public sealed class Cross_origin_requests
{
    static HttpRequestMessage Preflight(string path, string origin, string method = "POST") => new(HttpMethod.Options, path)
    {
        Headers =
        {
            { "Origin", origin },
            { "Access-Control-Request-Method", method },
            { "Access-Control-Request-Headers", "content-type,authorization,idempotency-key,last-event-id" },
        },
    };

    [Test]
    public async Task A_listed_origin_gets_the_headers_the_page_needs_even_when_keys_are_required()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["CORS_ORIGINS"] = "http://localhost:3000, https://chat.example.com/",
            ["API_KEYS"] = "web:secret",
        });
        using var http = factory.CreateClient();

        using var preflight = await http.SendAsync(Preflight("/chat", "http://localhost:3000"));
        Assert.That((int)preflight.StatusCode, Is.EqualTo(204), "a preflight carries no key and must not be refused");
        Assert.That(preflight.Headers.GetValues("Access-Control-Allow-Origin").Single(), Is.EqualTo("http://localhost:3000"));
        var allowed = string.Join(",", preflight.Headers.GetValues("Access-Control-Allow-Headers")).ToLowerInvariant();
        Assert.That(allowed, Does.Contain("content-type").And.Contain("authorization").And.Contain("idempotency-key").And.Contain("last-event-id"));

        using var stream = await http.SendAsync(Preflight("/stream/abc", "https://chat.example.com", "GET"));
        Assert.That(stream.Headers.GetValues("Access-Control-Allow-Origin").Single(), Is.EqualTo("https://chat.example.com"));
        using var delete = await http.SendAsync(Preflight("/chat/abc", "http://localhost:3000", "DELETE"));
        Assert.That(string.Join(",", delete.Headers.GetValues("Access-Control-Allow-Methods")), Does.Contain("DELETE"));

        // A refused request still carries the header, so the page can read why.
        using var unauthorized = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/stats") { Headers = { { "Origin", "http://localhost:3000" } } });
        Assert.That(unauthorized.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(unauthorized.Headers.GetValues("Access-Control-Allow-Origin").Single(), Is.EqualTo("http://localhost:3000"));
    }

    [Test]
    public async Task Another_origin_gets_no_cors_headers()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string> { ["CORS_ORIGINS"] = "http://localhost:3000" });
        using var http = factory.CreateClient();
        using var preflight = await http.SendAsync(Preflight("/chat", "http://evil.example"));
        Assert.That(preflight.Headers.Contains("Access-Control-Allow-Origin"), Is.False);
        using var get = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/stats") { Headers = { { "Origin", "http://localhost:3001" } } });
        Assert.That(get.Headers.Contains("Access-Control-Allow-Origin"), Is.False);
    }

    [Test]
    public async Task Without_the_setting_no_origin_is_allowed()
    {
        using var factory = new GatewayFactory(new Dictionary<string, string>());
        using var http = factory.CreateClient();
        using var preflight = await http.SendAsync(Preflight("/chat", "http://localhost:3000"));
        Assert.That(preflight.Headers.Contains("Access-Control-Allow-Origin"), Is.False);
    }

    [TestCase("localhost:3000")]
    [TestCase("ftp://files.example")]
    [TestCase("http://localhost:3000/app")]
    [TestCase("*")]
    public async Task A_bad_origin_stops_the_gateway_at_start_naming_the_setting(string origins)
    {
        await using var gateway = ServiceProcess.StartDotnet("gateway", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["HOST"] = "127.0.0.1",
            ["PORT"] = FreePort.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["CORS_ORIGINS"] = $"http://localhost:3000,{origins}",
        });
        var exitCode = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.That(exitCode, Is.Not.Zero);
        Assert.That(gateway.Output, Does.Contain($"CORS_ORIGINS: '{origins}' is not an origin"));
    }
}
