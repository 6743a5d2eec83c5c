using MassTransit;

namespace LlmStream.ChatWorker;

/// <summary>Retry policy of the chat consumer: transient provider failures only, with exponential backoff.</summary>
public sealed class ChatRequestedConsumerDefinition : ConsumerDefinition<ChatRequestedConsumer>
{
    public const int MaxRetries = 3;

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<ChatRequestedConsumer> consumerConfigurator, IRegistrationContext context)
    {
        consumerConfigurator.UseMessageRetry(retry =>
        {
            retry.Handle<TransientProviderException>();
            retry.Exponential(MaxRetries, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(2));
        });
    }
}
