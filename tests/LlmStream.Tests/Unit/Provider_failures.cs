using System.ClientModel;
using System.ClientModel.Primitives;
using LlmStream.Providers;

namespace LlmStream.Tests.Unit;

/// <summary>How a provider's error reads to a client of /v1: its own 4xx pass through, what no retry mends says so.</summary>
public sealed class Provider_failures
{
    static ClientResultException Answer(int status, string body) => new(new FakeResponse(status, body));

    [Test]
    public void A_model_the_provider_does_not_know_passes_through_as_its_404()
    {
        var failure = ProviderFailure.From(Answer(404,
            """{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"""));
        var client = failure.ForClient();
        Assert.That((client.Status, client.Type, client.Code, client.Retryable), Is.EqualTo((404, "invalid_request_error", "model_not_found", false)));
        Assert.That(client.Message, Does.Contain("gpt-9"), "the provider's own words");
        Assert.That(failure.IsTransient, Is.False);
    }

    [Test]
    public void An_azure_deployment_that_does_not_exist_passes_through_with_its_code()
    {
        var client = ProviderFailure.From(Answer(404, """{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}""")).ForClient();
        Assert.That((client.Status, client.Code, client.Retryable), Is.EqualTo((404, "DeploymentNotFound", false)));
    }

    [Test]
    public void A_refused_provider_key_is_the_gateways_problem_and_not_worth_a_retry()
    {
        var client = ProviderFailure.From(Answer(401, """{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}""")).ForClient();
        Assert.That((client.Status, client.Code, client.Retryable), Is.EqualTo((502, "provider_credentials_refused", false)));
    }

    [Test]
    public void A_bad_parameter_passes_through_naming_it()
    {
        var client = ProviderFailure.From(Answer(400,
            """{"error":{"message":"Invalid value for 'temperature'.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}""")).ForClient();
        Assert.That((client.Status, client.Param, client.Code, client.Retryable), Is.EqualTo((400, "temperature", "invalid_value", false)));
    }

    [TestCase(429, 429)]
    [TestCase(500, 502)]
    [TestCase(503, 502)]
    public void What_a_retry_may_mend_keeps_a_retryable_status(int provider, int client)
    {
        var failure = ProviderFailure.From(Answer(provider, """{"error":{"message":"busy","type":"server_error"}}"""));
        Assert.That(failure.IsTransient, Is.True);
        Assert.That((failure.ForClient().Status, failure.ForClient().Retryable), Is.EqualTo((client, true)));
    }

    [Test]
    public void A_body_that_is_not_an_error_object_leaves_the_status_to_speak()
    {
        var client = ProviderFailure.From(Answer(404, "<html>not found</html>")).ForClient();
        Assert.That((client.Status, client.Type, client.Code, client.Retryable), Is.EqualTo((404, "invalid_request_error", (string?)null, false)));
    }

    sealed class FakeResponse(int status, string body) : PipelineResponse
    {
        readonly BinaryData _content = BinaryData.FromString(body);

        public override int Status => status;
        public override string ReasonPhrase => "";
        public override Stream? ContentStream { get; set; }
        public override BinaryData Content => _content;
        protected override PipelineResponseHeaders HeadersCore => new NoHeaders();
        public override BinaryData BufferContent(CancellationToken cancellationToken = default) => _content;
        public override ValueTask<BinaryData> BufferContentAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(_content);
        public override void Dispose() { }
    }

    sealed class NoHeaders : PipelineResponseHeaders
    {
        public override bool TryGetValue(string name, out string? value) { value = null; return false; }
        public override bool TryGetValues(string name, out IEnumerable<string>? values) { values = null; return false; }
        public override IEnumerator<KeyValuePair<string, string>> GetEnumerator() => Enumerable.Empty<KeyValuePair<string, string>>().GetEnumerator();
    }
}
