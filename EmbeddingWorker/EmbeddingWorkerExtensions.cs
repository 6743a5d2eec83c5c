using LlmStream.Contracts;
using LlmStream.Messaging;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.Sessions.Embeddings;
using Microsoft.Extensions.Options;

namespace LlmStream.EmbeddingWorker;

public static class EmbeddingWorkerExtensions
{
    /// <summary>What an embedding batch needs, in one call: the store of its results, and the provider under the rate limits.</summary>
    public static IHostApplicationBuilder AddEmbeddingWorker(this IHostApplicationBuilder builder, Deployment deployment)
    {
        builder.AddSessions(deployment);
        builder.AddProviders(deployment);
        builder.AddValidatedSettings<EmbeddingWorkerOptions>();
        return builder;
    }

    /// <summary>The embedding consumer on the embeddings-high, -default and -low queues, EMBEDDING_CONCURRENCY batches in flight in all.</summary>
    public static WorkConsumers AddEmbeddingConsumer(this WorkConsumers consumers, IConfiguration configuration)
    {
        return consumers.Add<EmbedBatchRequested, EmbedBatchRequestedConsumer, EmbedBatchRequestedConsumerDefinition>(
            WorkQueues.Embeddings, configuration.Settings<EmbeddingWorkerOptions>().Concurrency,
            deadLettered: (services, message, reason) =>
                services.GetRequiredService<IEmbeddingStore>().FinishAsync(message.TaskId, EmbeddingState.Failed, reason, CancellationToken.None));
    }

    /// <summary>A separate embedding worker needs a broker shared with the gateway; it says at start what it runs against.</summary>
    public static IHostApplicationBuilder AddEmbeddingWorkerProcessChecks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<BrokerOptions>>(new SeparateWorkerBrokerValidator("embedding worker", "EmbeddingWorker"));
        builder.Services.AddHostedService<EmbeddingWorkerStartupReport>();
        return builder;
    }
}

public sealed class EmbeddingWorkerStartupReport(
    IOptions<BrokerOptions> broker, IOptions<EmbeddingWorkerOptions> worker, IOptions<EmbeddingOptions> embeddings, ModelClients models,
    ILogger<EmbeddingWorkerStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Embedding worker on {Broker}, {Concurrency} batches in flight, chunks of up to {Texts} texts / {Tokens} tokens, {Parallelism} per batch at once, model provider: {Provider}",
            broker.Value.Kind, worker.Value.Concurrency, embeddings.Value.ChunkTexts, embeddings.Value.ChunkTokens,
            embeddings.Value.ChunkParallelism, models.Describe());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
