using LlmStream.ServiceDefaults.Settings;
using MassTransit;
using Microsoft.Extensions.Options;

namespace LlmStream.Messaging.Bus;

/// <summary>Sends commands through MassTransit (RabbitMQ or in-memory); RabbitMQ sends wait for the publisher confirm.</summary>
public sealed class MassTransitWorkDispatcher(IBus bus, IOptions<BrokerOptions> options, RabbitMqWorkTopology topology, IWaitingLedger waiting, TimeProvider clock) : IWorkDispatcher
{
    /// <summary>A broker that is down must turn into a 503, not a request that hangs while the bus reconnects.</summary>
    static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(10);

    readonly BrokerKind _kind = options.Value.Kind;

    public async Task DispatchAsync<T>(T message, WorkAddress destination, CancellationToken cancellationToken) where T : class
    {
        var queue = destination.Queue;
        var messageId = NewId.NextGuid();
        await waiting.AddAsync(queue, messageId, clock.GetUtcNow());
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SendTimeout);
        try
        {
            Uri address;
            if (_kind == BrokerKind.RabbitMq)
            {
                await topology.EnsureDeclaredAsync(destination.Queues, timeout.Token);
                // The queue already exists with its arguments; "queue:" would redeclare it without them.
                address = new Uri($"exchange:{queue}");
            }
            else
            {
                address = new Uri($"queue:{queue}");
            }

            var endpoint = await bus.GetSendEndpoint(address);
            await endpoint.Send(message, context =>
            {
                context.MessageId = messageId;
                context.TrySetPriority(destination.QueuePriority);
            }, timeout.Token);
        }
        catch (Exception e)
        {
            await waiting.RemoveAsync(queue, messageId);
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
                throw;
            throw new BrokerUnavailableException($"the message broker did not accept the message for queue '{queue}': {e.Message}", e);
        }
    }
}
