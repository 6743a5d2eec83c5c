using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace LlmStream.Messaging.Bus;

/// <summary>
/// Declares the work queues exactly as the workers' receive endpoints do (durable classic queue with
/// x-max-priority, or a quorum queue; a fanout exchange of the same name, bound to it), so that a gateway that starts
/// before any worker never sends a message into an exchange with no queue behind it.
/// </summary>
public sealed class RabbitMqWorkTopology(Deployment deployment, ILogger<RabbitMqWorkTopology> logger) : IAsyncDisposable
{
    /// <summary>A connection to the first node of the cluster that answers.</summary>
    Task<IConnection> ConnectAsync(string name, CancellationToken cancellationToken)
    {
        var address = deployment.RabbitMq!;
        var factory = new ConnectionFactory { Uri = address.First };
        return factory.CreateConnectionAsync(address.Nodes.Select(node => new AmqpTcpEndpoint(node)).ToList(), name, cancellationToken);
    }

    /// <summary>The arguments the receive endpoints declare the work queues with (see MessagingExtensions).</summary>
    Dictionary<string, object?> QueueArguments() => deployment.QuorumQueues
        ? new() { ["x-queue-type"] = "quorum" }
        : new() { ["x-max-priority"] = (int)WorkQueues.MaxQueuePriority };

    readonly SemaphoreSlim _gate = new(1, 1);
    readonly HashSet<string> _declared = [];

    readonly SemaphoreSlim _statsGate = new(1, 1);
    IConnection? _stats;

    /// <summary>
    /// Messages ready and consumers attached, per queue (a passive declare: exact, and it creates nothing). One
    /// connection is kept for these reads (GET /stats and the /metrics gauges every few seconds), not one per read.
    /// </summary>
    public async Task<IReadOnlyList<(string Queue, long Ready, long Consumers)>> DepthsAsync(IEnumerable<string> queues, CancellationToken cancellationToken)
    {
        await _statsGate.WaitAsync(cancellationToken);
        try
        {
            if (_stats is not { IsOpen: true })
            {
                if (_stats is not null)
                    await _stats.DisposeAsync();
                _stats = null;
                _stats = await ConnectAsync("llmstream-stats", cancellationToken);
            }
            return await DepthsAsync(_stats, queues, cancellationToken);
        }
        finally
        {
            _statsGate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stats is not null)
            await _stats.DisposeAsync();
    }

    static async Task<IReadOnlyList<(string Queue, long Ready, long Consumers)>> DepthsAsync(IConnection connection, IEnumerable<string> queues, CancellationToken cancellationToken)
    {
        var depths = new List<(string, long, long)>();
        foreach (var queue in queues)
        {
            // A failed passive declare closes its channel: one channel per queue.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
                depths.Add((queue, ok.MessageCount, ok.ConsumerCount));
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                depths.Add((queue, 0, 0)); // not declared yet: nothing was ever sent to it
            }
        }
        return depths;
    }

    /// <summary>An exchange declared here as "direct" that MassTransit declares as "fanout" when a message is sent to it.</summary>
    public const string ChannelResetExchange = "llmstream.channel-reset";

    /// <summary>Declares <see cref="ChannelResetExchange"/> (not durable: a restarted broker has none until the next reset).</summary>
    public async Task DeclareChannelResetExchangeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync("llmstream-topology", cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(ChannelResetExchange, ExchangeType.Direct, durable: false, autoDelete: false, cancellationToken: cancellationToken);
    }

    public async Task EnsureDeclaredAsync(WorkQueues queues, CancellationToken cancellationToken)
    {
        if (_declared.Contains(queues.Default))
            return;

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_declared.Contains(queues.Default))
                return;

            await using var connection = await ConnectAsync("llmstream-topology", cancellationToken);
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            foreach (var queue in queues.All)
            {
                await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, QueueArguments(), cancellationToken: cancellationToken);
                await channel.ExchangeDeclareAsync(queue, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
                await channel.QueueBindAsync(queue, queue, "", cancellationToken: cancellationToken);
            }
            _declared.Add(queues.Default);
            logger.LogInformation("Declared work queues {Queues}", string.Join(", ", queues.All));
        }
        finally
        {
            _gate.Release();
        }
    }
}
