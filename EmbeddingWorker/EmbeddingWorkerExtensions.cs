using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Embeddings;
using LlmStream.ServiceDefaults.Models;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Options;

namespace LlmStream.EmbeddingWorker;

public static class EmbeddingWorkerExtensions
{
    /// <summary>The embedding consumer on the embeddings-high, -default and -low queues, EMBEDDING_CONCURRENCY batches in flight in all.</summary>
    public static WorkConsumers AddEmbeddingWorker(this WorkConsumers consumers, IConfiguration configuration)
    {
        var options = configuration.Settings<WorkerOptions>();
        return consumers.Add<EmbedBatchRequested, EmbedBatchRequestedConsumer, EmbedBatchRequestedConsumerDefinition>(
            WorkQueues.Embeddings, options.EmbeddingConcurrency,
            deadLettered: (services, message, reason) =>
                services.GetRequiredService<IEmbeddingStore>().FinishAsync(message.TaskId, EmbeddingState.Failed, reason, CancellationToken.None));
    }

    /// <summary>A separate embedding worker needs a broker shared with the gateway; it says at start what it runs against.</summary>
    public static IHostApplicationBuilder AddEmbeddingWorkerChecks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<BrokerOptions>>(new SeparateWorkerBrokerValidator("embedding worker", "EmbeddingWorker"));
        builder.Services.AddHostedService<EmbeddingWorkerStartupReport>();
        return builder;
    }
}

public sealed class EmbeddingWorkerStartupReport(
    IOptions<BrokerOptions> broker, IOptions<WorkerOptions> worker, IOptions<EmbeddingOptions> embeddings, ModelClients models,
    ILogger<EmbeddingWorkerStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Embedding worker on {Broker}, {Concurrency} batches in flight, chunks of up to {Texts} texts / {Tokens} tokens, {Parallelism} per batch at once, model provider: {Provider}",
            broker.Value.Kind, worker.Value.EmbeddingConcurrency, embeddings.Value.ChunkTexts, embeddings.Value.ChunkTokens,
            embeddings.Value.ChunkParallelism, models.Describe());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
