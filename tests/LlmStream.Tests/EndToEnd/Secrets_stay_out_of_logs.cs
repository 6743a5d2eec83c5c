using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>No API key, provider key or broker password appears in what any process writes, whatever the requests.</summary>
public sealed class Secrets_stay_out_of_logs
{
    const string ClientKey = "sk-client-TOPSECRET-4f1c";
    const string WrongKey = "sk-wrong-TOPSECRET-9b2e";
    const string ProviderKey = "sk-provider-TOPSECRET-77aa";

    [Test]
    public async Task Not_in_the_gateway_or_worker_output()
    {
        await using var cluster = await Cluster.StartAsync("secrets", settings: new Dictionary<string, string>
        {
            ["OPENAI_API_KEY"] = ProviderKey,
            ["API_KEYS"] = "ops:" + ClientKey,
        });
        using var http = cluster.Client();

        using (var wrong = new HttpRequestMessage(HttpMethod.Post, "/chat") { Content = JsonContent.Create(new { message = "hi" }) })
        {
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", WrongKey);
            Assert.That((await http.SendAsync(wrong)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ClientKey);
        var (taskId, _) = await cluster.PostChatAsync(http, new { message = "my key is " + "not logged" });
        await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
        using (var query = new HttpRequestMessage(HttpMethod.Get, $"/stream/x?api_key={WrongKey}"))
        {
            query.Headers.Authorization = null;
            http.DefaultRequestHeaders.Authorization = null;
            Assert.That((await http.SendAsync(query)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }
        Assert.That(cluster.Provider.Behavior.Requests.Last().ApiKey, Is.EqualTo(ProviderKey), "the provider got the key");

        var logs = cluster.Logs();
        Assert.That(logs, Does.Contain(taskId), "the processes did log the request");
        Assert.That(logs, Does.Not.Contain("TOPSECRET"));
        var password = new Uri(cluster.RabbitMqUrl).UserInfo.Split(':').Last();
        Assert.That(logs, Does.Not.Contain(":" + password + "@"), "no broker URL with its password");
    }
}
