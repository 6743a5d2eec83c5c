using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests;

/// <summary>
/// In the root namespace, so that NUnit runs its teardown after every test of the assembly.
/// One RabbitMQ node for the whole run (it takes seconds to boot); scenarios isolate themselves in their
/// own virtual hosts. Started on first use, stopped when the run ends.
/// </summary>
[SetUpFixture]
public sealed class SharedServices
{
    static readonly SemaphoreSlim Gate = new(1, 1);
    static RabbitMqServer? _rabbitMq;
    static RabbitMqCluster? _rabbitMqCluster;

    public static async Task<RabbitMqServer> RabbitMqAsync()
    {
        await Gate.WaitAsync();
        try
        {
            return _rabbitMq ??= await RabbitMqServer.StartAsync();
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>A three-node RabbitMQ cluster for the specs of quorum queues (a fault spec that kills nodes starts its own).</summary>
    public static async Task<RabbitMqCluster> RabbitMqClusterAsync()
    {
        await Gate.WaitAsync();
        try
        {
            return _rabbitMqCluster ??= await RabbitMqCluster.StartAsync(nodes: 3);
        }
        finally
        {
            Gate.Release();
        }
    }

    [OneTimeTearDown]
    public async Task StopAll()
    {
        if (_rabbitMq is not null)
            await _rabbitMq.DisposeAsync();
        if (_rabbitMqCluster is not null)
            await _rabbitMqCluster.DisposeAsync();
    }
}
