using LlmStream.ServiceDefaults.Settings;
using MassTransit;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging;

namespace LlmStream.Messaging.Bus;

/// <summary>Sends commands through MassTransit (RabbitMQ or in-memory); RabbitMQ sends wait for the publisher confirm.</summary>
public sealed class MassTransitWorkDispatcher(
    IBus bus, IOptions<BrokerOptions> options, RabbitMqWorkTopology topology, IWaitingLedger waiting, TimeProvider clock, ILogger<MassTransitWorkDispatcher> logger) : IWorkDispatcher
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
            Volatile.Write(ref _unconfirmedWhileReachable, 0);
        }
        catch (Exception e)
        {
            await waiting.RemoveAsync(queue, messageId);
            if (e is OperationCanceledException && _kind == BrokerKind.RabbitMq && timeout.IsCancellationRequested)
                _ = CheckForStalledChannelAsync();
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
                throw;
            throw new BrokerUnavailableException($"the message broker did not accept the message for queue '{queue}': {e.Message}", e);
        }
    }

    /// <summary>The marker sent to <see cref="RabbitMqWorkTopology.ChannelResetExchange"/>; it never reaches a queue.</summary>
    public sealed record ChannelReset;

    int _unconfirmedWhileReachable;
    int _checking;

    /// <summary>
    /// A send the broker never confirmed may sit on a channel that will never get its confirms: RabbitMQ before 4.0
    /// loses a quorum queue's new publisher that registered during a leader election (rabbitmq-server#13095), and every
    /// later send on that channel waits too. MassTransit keeps a channel until it fails, so one is made to fail: a send
    /// to an exchange declared with another type closes it (406), and the next send opens a new one. Only when two sends
    /// in a row went unconfirmed while the broker answered a connection of its own: a broker that is down or restarting
    /// is an outage, and a channel just opened after it must not be closed. What the stalled channel held was never
    /// confirmed, so those requests were already refused and their tasks withdrawn.
    /// </summary>
    async Task CheckForStalledChannelAsync()
    {
        if (Interlocked.Exchange(ref _checking, 1) == 1)
            return;
        try
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await topology.DeclareChannelResetExchangeAsync(limit.Token);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Volatile.Write(ref _unconfirmedWhileReachable, 0); // the broker is down: an outage, not a stalled channel
                return;
            }
            if (Interlocked.Increment(ref _unconfirmedWhileReachable) < 2)
                return;
            Volatile.Write(ref _unconfirmedWhileReachable, 0);
            try
            {
                var endpoint = await bus.GetSendEndpoint(new Uri($"exchange:{RabbitMqWorkTopology.ChannelResetExchange}"));
                await endpoint.Send(new ChannelReset(), limit.Token);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Expected: the 406 that closes the channel.
            }
            logger.LogWarning("Sends to the broker went unconfirmed while it answered: their channel was closed so that the next send opens a new one");
        }
        finally
        {
            Volatile.Write(ref _checking, 0);
        }
    }
}
