using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.Sessions;

/// <summary>
/// REDIS_WAIT_REPLICAS: after a milestone of a task is written (created, attempt started, ended), waits until that many
/// replicas of the node holding it have the write (WAIT, on the connection the write went over), so a failover cannot
/// lose it. Tokens between the milestones are not waited for: a failover may lose the last of them from the stream
/// (the task's result keeps the whole text).
/// </summary>
public sealed class RedisReplicaWait(IConnectionMultiplexer redis, IOptions<SessionOptions> options, ILogger<RedisReplicaWait> logger)
{
    readonly int _replicas = options.Value.WaitReplicas;
    readonly long _timeoutMs = options.Value.WaitTimeoutMilliseconds;
    long _lastWarning;

    public bool IsOn => _replicas > 0;

    /// <summary>Waits until the replicas of the node holding <paramref name="key"/> have every write made before this call.</summary>
    public async Task ReplicatedAsync(RedisKey key)
    {
        if (_replicas == 0)
            return;
        var acknowledged = (long)await redis.GetServer(key).ExecuteAsync("WAIT", _replicas, _timeoutMs);
        if (acknowledged < _replicas && Environment.TickCount64 - Interlocked.Read(ref _lastWarning) > 10_000)
        {
            Interlocked.Exchange(ref _lastWarning, Environment.TickCount64);
            logger.LogWarning("Only {Acknowledged} of {Replicas} Redis replicas (REDIS_WAIT_REPLICAS) had a task's write after {Timeout} ms; going on: a failover now could lose it",
                acknowledged, _replicas, _timeoutMs);
        }
    }
}
