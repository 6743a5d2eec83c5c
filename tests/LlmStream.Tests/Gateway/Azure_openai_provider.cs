using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.FakeOpenAI;

namespace LlmStream.Tests.Gateway;

/// <summary>
/// Azure OpenAI as the provider (AZURE_OPENAI_*): the real Azure SDK against the fake server's Azure routes, in the
/// single-process default. The deployment settings name what is called, whatever model the request asks for.
/// </summary>
public sealed class Azure_openai_provider
{
    FakeOpenAiServer _azure = null!;
    GatewayFactory _factory = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _azure = await FakeOpenAiServer.StartAsync();
        _azure.Behavior.RequiredApiKey = "azure-test-key";
        _factory = new GatewayFactory(new Dictionary<string, string>
        {
            ["AZURE_OPENAI_ENDPOINT"] = _azure.Root.ToString(),
            ["AZURE_OPENAI_API_KEY"] = "azure-test-key",
            ["AZURE_OPENAI_DEPLOYMENT"] = "chat-deployment",
            ["AZURE_OPENAI_EMBEDDING_DEPLOYMENT"] = "embedding-deployment",
        });
        _http = _factory.CreateClient();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _factory.DisposeAsync();
        await _azure.DisposeAsync();
    }

    [Test]
    public async Task A_chat_goes_to_the_chat_deployment_with_the_api_key_and_an_api_version()
    {
        using var response = await _http.PostAsJsonAsync("/v1/chat/completions",
            new { model = "gpt-4o-mini", messages = new[] { new { role = "user", content = "hello azure" } } });
        var body = await response.Content.ReadAsStringAsync();
        Assert.That((int)response.StatusCode, Is.EqualTo(200), body);
        using var completion = JsonDocument.Parse(body);
        Assert.That(completion.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(),
            Is.EqualTo(FakeBehavior.DefaultReply("hello azure")));

        var call = _azure.Behavior.Requests.Single(r => r.Messages.Last().Content == "hello azure");
        Assert.That(call.Path, Is.EqualTo("/openai/deployments/chat-deployment/chat/completions"));
        Assert.That(call.Query, Does.Contain("api-version="));
        Assert.That(call.ApiKey, Is.EqualTo("azure-test-key"));
        Assert.That(call.Headers.ContainsKey("api-key"), Is.True, "Azure's key header, not a bearer token");
    }

    [Test]
    public async Task Embeddings_go_to_the_embedding_deployment()
    {
        using var response = await _http.PostAsJsonAsync("/v1/embeddings", new { model = "text-embedding-3-small", input = new[] { "a", "b" } });
        var body = await response.Content.ReadAsStringAsync();
        Assert.That((int)response.StatusCode, Is.EqualTo(200), body);
        using var list = JsonDocument.Parse(body);
        Assert.That(list.RootElement.GetProperty("data").GetArrayLength(), Is.EqualTo(2));
        Assert.That(_azure.Behavior.EmbeddingInputs.SelectMany(i => i), Does.Contain("a").And.Contain("b"));
        Assert.That(_azure.Behavior.EmbeddingHeaders.Last().TryGetValue("api-key", out var key) ? key : null, Is.EqualTo("azure-test-key"));
    }
}
