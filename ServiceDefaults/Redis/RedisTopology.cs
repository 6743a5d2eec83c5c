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
}
