using LlmStream.Messaging;
using LlmStream.Messaging.Bus;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Operations;

/// <summary>
/// What the first requests would otherwise wait for, done once the gateway has started: the default model's tokenizer
/// (most of a second to load) and, on RabbitMQ, the work queues the first send of each kind declares.
/// </summary>
public sealed class GatewayWarmUp(
    PromptTokens tokens, IOptions<ModelOptions> models, IOptions<BrokerOptions> broker, IServiceProvider services,
    ILogger<GatewayWarmUp> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield(); // the host's start does not wait for this
        try
        {
            tokens.Warm(models.Value.LlmModel);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The first request loads it then, and reports what fails; a warm-up never stops the gateway.
            logger.LogWarning("The tokenizer of {Model} was not loaded at start: {Reason}", models.Value.LlmModel, e.GetBaseException().Message);
        }
        if (broker.Value.Kind == BrokerKind.RabbitMq && services.GetService<RabbitMqWorkTopology>() is { } topology)
        {
            try
            {
                foreach (var kind in WorkQueues.Kinds)
                    await topology.EnsureDeclaredAsync(kind, stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // Not an error here: the first send declares them, and reports the broker if it is still down.
                logger.LogDebug("Work queues not declared at start ({Reason}); the first send declares them", e.GetBaseException().Message);
            }
        }
    }
}
