using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using Azure.AI.OpenAI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using OpenAI;

namespace LlmStream.Providers;

/// <summary>
/// One long-lived chat client and embedding generator per model name, for the configured provider (OpenAI, Azure OpenAI,
/// an OpenAI-compatible server, or the simulated model). The SDK's own retries are off: the bus
/// retries whole attempts, so that a retry is visible in the stream and never stacks on another layer.
/// </summary>
public sealed class ModelClients : IDisposable
{
    readonly ModelOptions _options;
    readonly OpenAIClient? _client;
    readonly ConcurrentDictionary<string, IChatClient> _chatClients = new();
    readonly ConcurrentDictionary<string, IEmbeddingGenerator<string, Embedding<float>>> _embeddingGenerators = new();

    public ModelClients(IOptions<ModelOptions> options, TimeProvider clock)
    {
        _options = options.Value;
        Clock = clock;
        var retryOff = new ClientRetryPolicy(maxRetries: 0);
        // A cancelled or abandoned stream closes its connection at once instead of reading the rest:
        // the provider sees the cancellation and stops generating (and billing).
        var transport = new HttpClientPipelineTransport(new HttpClient(new SocketsHttpHandler
        {
            MaxResponseDrainSize = 0,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // NetworkTimeout and LLM_TIMEOUT bound each call
        });
        // The generation time limit is enforced per task; the network timeout only has to be longer.
        var networkTimeout = _options.LlmTimeout + TimeSpan.FromSeconds(30);
        // The SDK's own request logging would go to an EventSource nobody reads: our logs, metrics and traces cover each call.
        ClientLoggingOptions LoggingOff() => new() { EnableLogging = false };
        _client = _options.Provider switch
        {
            ProviderKind.AzureOpenAi => new AzureOpenAIClient(
                new Uri(_options.AzureEndpoint!),
                new ApiKeyCredential(_options.AzureApiKey!),
                new AzureOpenAIClientOptions { RetryPolicy = retryOff, NetworkTimeout = networkTimeout, Transport = transport, ClientLoggingOptions = LoggingOff() }),
            ProviderKind.OpenAi => new OpenAIClient(
                // OpenAI-compatible servers often need no key; the SDK still wants one.
                new ApiKeyCredential(string.IsNullOrWhiteSpace(_options.OpenAiApiKey) ? "unused" : _options.OpenAiApiKey),
                new OpenAIClientOptions
                {
                    Endpoint = string.IsNullOrWhiteSpace(_options.OpenAiBaseUrl) ? null : new Uri(_options.OpenAiBaseUrl),
                    RetryPolicy = retryOff,
                    NetworkTimeout = networkTimeout,
                    Transport = transport,
                    ClientLoggingOptions = LoggingOff(),
                }),
            _ => null,
        };
    }

    TimeProvider Clock { get; }

    public bool IsSimulated => _client is null;

    public string Describe() => _options.Describe();

    /// <summary>The client for <paramref name="model"/>; on Azure the deployment setting wins over the model name.</summary>
    public IChatClient For(string model) => _chatClients.GetOrAdd(model, m => _client switch
    {
        null => new SimulatedChatClient(m, _options.SimulatedTokensPerSecond, Clock),
        AzureOpenAIClient azure => azure.GetChatClient(_options.AzureDeployment ?? m).AsIChatClient(),
        var openAi => openAi.GetChatClient(m).AsIChatClient(),
    });

    /// <summary>The embedding generator for <paramref name="model"/>; on Azure, AZURE_OPENAI_EMBEDDING_DEPLOYMENT names its deployment.</summary>
    public IEmbeddingGenerator<string, Embedding<float>> EmbeddingsFor(string model) => _embeddingGenerators.GetOrAdd(model, m => _client switch
    {
        null => new SimulatedEmbeddingGenerator(m),
        AzureOpenAIClient azure => azure.GetEmbeddingClient(_options.AzureEmbeddingDeployment ?? m).AsIEmbeddingGenerator(),
        var openAi => openAi.GetEmbeddingClient(m).AsIEmbeddingGenerator(),
    });

    public void Dispose()
    {
        foreach (var client in _chatClients.Values)
            client.Dispose();
        foreach (var generator in _embeddingGenerators.Values)
            generator.Dispose();
    }
}
