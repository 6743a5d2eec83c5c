using LlmStream.Providers;
using MassTransit;
using Microsoft.Extensions.Options;

namespace LlmStream.EmbeddingWorker;

/// <summary>
/// Provider failures are retried per chunk inside the consumer; the message itself is retried only when Redis
/// (where chunks are stored) was briefly unreachable, and a retry runs only the chunks still missing.
/// </summary>
public sealed class EmbedBatchRequestedConsumerDefinition(IOptions<RetryOptions> options) : ConsumerDefinition<EmbedBatchRequestedConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<EmbedBatchRequestedConsumer> consumerConfigurator, IRegistrationContext context)
    {
        var settings = options.Value;
        if (settings.RetryLimit == 0)
            return;
        var baseInterval = TimeSpan.FromMilliseconds(settings.RetryBaseMilliseconds);
        consumerConfigurator.UseMessageRetry(retry =>
        {
            retry.Handle<StackExchange.Redis.RedisException>();
            retry.Handle<StackExchange.Redis.RedisTimeoutException>();
            retry.Exponential(settings.RetryLimit, baseInterval, TimeSpan.FromSeconds(60), baseInterval * 2);
        });
    }
}
