using LlmStream.Providers;
using MassTransit;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>
/// The one retry layer for chat generations (the SDK's own retries are off): transient provider failures only,
/// RETRY_LIMIT times with exponential backoff from RETRY_BASE_MS. The consumer adds a provider's Retry-After.
/// </summary>
public sealed class ChatRequestedConsumerDefinition(IOptions<RetryOptions> options) : ConsumerDefinition<ChatRequestedConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ChatRequestedConsumer> consumerConfigurator, IRegistrationContext context)
    {
        var settings = options.Value;
        if (settings.RetryLimit == 0)
            return;
        var baseInterval = TimeSpan.FromMilliseconds(settings.RetryBaseMilliseconds);
        consumerConfigurator.UseMessageRetry(retry =>
        {
            retry.Handle<TransientProviderException>();
            retry.Handle<StackExchange.Redis.RedisException>(); // the task store or stream briefly unreachable
            retry.Handle<StackExchange.Redis.RedisTimeoutException>(); // or slow to answer (not a RedisException)
            retry.Exponential(settings.RetryLimit, baseInterval, TimeSpan.FromSeconds(60), baseInterval * 2);
        });
    }
}
