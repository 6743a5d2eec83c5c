using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>API_KEY_RPM with two gateway processes sharing Redis: a key has one budget, not one per gateway.</summary>
public sealed class Api_key_budget_across_gateways
{
    [Test]
    public async Task A_key_over_its_budget_on_one_gateway_is_over_it_on_the_other()
    {
        // 6 a minute: one request now, the next in ten seconds, whichever gateway takes it.
        await using var cluster = await Cluster.StartAsync("key-budget", workers: 0, settings: new Dictionary<string, string>
        {
            ["API_KEYS"] = "alice:alice-key-1,bob:bob-key-2",
            ["API_KEY_RPM"] = "6",
        });
        await cluster.StartGatewayAsync();
        using var first = cluster.Client(0);
        using var second = cluster.Client(1);
        static async Task<HttpResponseMessage> Get(HttpClient http, string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/stats");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return await http.SendAsync(request);
        }

        Assert.That((await Get(first, "alice-key-1")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var limited = await Get(second, "alice-key-1");
        Assert.That(limited.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), "the second gateway knows the budget is spent");
        Assert.That(limited.Headers.RetryAfter?.Delta, Is.InRange(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10)));
        var problem = await limited.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("API_KEY_RPM").And.Contain("alice"));
        Assert.That((await Get(first, "alice-key-1")).StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));

        Assert.That((await Get(second, "bob-key-2")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "bob has his own budget");
    }
}
