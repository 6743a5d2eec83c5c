using System.Runtime.CompilerServices;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Redis;

/// <summary>Whether the connection reaches a Redis Cluster, where one command or script may touch one hash slot only.</summary>
public static class RedisTopology
{
    static readonly ConditionalWeakTable<IConnectionMultiplexer, StrongBox<bool>> Known = new();

    /// <summary>
    /// True on a Redis Cluster. Known once a server has answered; until then false, which is only ever a cost (a
    /// standalone Redis takes one script over several slots, a cluster refuses it and the caller's retry asks again).
    /// </summary>
    public static bool IsCluster(IConnectionMultiplexer redis)
    {
        if (Known.TryGetValue(redis, out var known))
            return known.Value;
        var servers = redis.GetServers();
        if (!servers.Any(s => s.IsConnected))
            return false;
        var cluster = servers.Any(s => s.ServerType == ServerType.Cluster);
        Known.AddOrUpdate(redis, new StrongBox<bool>(cluster));
        return cluster;
    }

    /// <summary>
    /// On a Redis Cluster, what of the slot space has no master this process reaches (work in those shards fails until a
    /// replica takes over and the client has learnt it), from the client's view of the cluster; null when every slot is served.
    /// </summary>
    public static string? UnservedSlots(IConnectionMultiplexer redis)
    {
        var configuration = redis.GetServers().FirstOrDefault(s => s.IsConnected)?.ClusterConfiguration;
        if (configuration is null)
            return "no node answers";
        var served = configuration.Nodes
            .Where(node => !node.IsReplica && node.EndPoint is not null && redis.GetServer(node.EndPoint).IsConnected)
            .SelectMany(node => node.Slots)
            .Sum(range => range.To - range.From + 1);
        return served < 16384 ? $"{16384 - served} of 16384 slots have no reachable master" : null;
    }

    /// <summary>
    /// After a connection to a cluster node is lost, asks the cluster for its slot map every second until every slot
    /// has a reachable master again (or two minutes pass): the client learns at once that a replica took a dead
    /// master's slots, instead of at its next periodic check or a MOVED reply.
    /// </summary>
    public static void FollowFailovers(ConnectionMultiplexer redis)
    {
        var following = 0;
        redis.ConnectionFailed += (_, e) =>
        {
            if (e.ConnectionType != ConnectionType.Interactive || !IsCluster(redis) || Interlocked.Exchange(ref following, 1) == 1)
                return;
            _ = Task.Run(async () =>
            {
                try
                {
                    var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
                    do
                    {
                        await Task.Delay(TimeSpan.FromSeconds(1));
                        try { await redis.ConfigureAsync(); }
                        catch (Exception failure) when (failure is RedisException or TimeoutException) { }
                    }
                    while (UnservedSlots(redis) is not null && DateTime.UtcNow < until);
                }
                finally
                {
                    Volatile.Write(ref following, 0);
                }
            });
        };
    }
}
