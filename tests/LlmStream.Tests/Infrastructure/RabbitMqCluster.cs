using System.Text.Json;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A real RabbitMQ cluster on loopback: <c>nodes</c> rabbitmq-server nodes (each with its own name, ports and folders;
/// the same Erlang cookie, the rabbitmq user's), the second and later joined to the first. Owned by the test that started it.
/// </summary>
public sealed class RabbitMqCluster : IAsyncDisposable
{
    readonly List<RabbitMqServer> _nodes;

    RabbitMqCluster(List<RabbitMqServer> nodes) => _nodes = nodes;

    public IReadOnlyList<RabbitMqServer> Nodes => _nodes;

    public static async Task<RabbitMqCluster> StartAsync(int nodes = 3)
    {
        var started = new List<RabbitMqServer>();
        try
        {
            // The nodes boot side by side; joining goes one at a time.
            started.AddRange(await Task.WhenAll(Enumerable.Range(0, nodes).Select(_ => RabbitMqServer.StartAsync())));
            foreach (var node in started.Skip(1))
                await node.JoinAsync(started[0]);
            return new RabbitMqCluster(started);
        }
        catch
        {
            foreach (var node in started)
                await node.DisposeAsync();
            throw;
        }
    }

    RabbitMqServer AnyRunning => _nodes.First(n => n.IsUp);

    /// <summary>A virtual host of the cluster (with the lazy-queue policy, which quorum queues ignore); returns RABBITMQ_URL naming every node.</summary>
    public async Task<string> CreateVirtualHostAsync(string name)
    {
        await AnyRunning.CreateVirtualHostAsync(name);
        return $"amqp://guest:guest@{string.Join(',', _nodes.Select(n => $"127.0.0.1:{n.AmqpPort}"))}/{name}";
    }

    /// <summary>The node that leads a quorum queue now (the management API's "leader").</summary>
    public async Task<RabbitMqServer> LeaderOfAsync(string vhost, string queue)
    {
        var info = await QueueAsync(vhost, queue);
        var leader = info.TryGetProperty("leader", out var l) ? l.GetString() : info.GetProperty("node").GetString();
        return _nodes.Single(n => n.NodeName == leader);
    }

    /// <summary>The queue as the management API shows it: type, members, leader. A queue just declared takes the
    /// management API a moment to list: 404s are waited out for a while.</summary>
    public async Task<JsonElement> QueueAsync(string vhost, string queue)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            try
            {
                return await AnyRunning.QueueAsync(vhost, queue);
            }
            catch (HttpRequestException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound && DateTime.UtcNow < until)
            {
                await Task.Delay(250);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
            await node.DisposeAsync();
    }
}
