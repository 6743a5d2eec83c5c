using System.Diagnostics.Metrics;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Counting;
using LlmStream.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace LlmStream.Tests.Stores;

/// <summary>
/// Specs that hold for the Redis implementation and the single-process one alike: the fixture named "redis" gets
/// its own redis-server and a connection to it, "redis-cluster" its own Redis Cluster of three masters, the other none.
/// </summary>
public abstract class RedisOrInProcess(string kind)
{
    RedisServer? _redis;
    RedisCluster? _cluster;

    protected string Kind => kind;

    /// <summary>The store under test is Redis (one server or a cluster).</summary>
    protected bool IsRedis => kind is "redis" or "redis-cluster";

    /// <summary>The connection of the "redis" fixture; null for the in-process one.</summary>
    protected ConnectionMultiplexer? Connection { get; private set; }

    [OneTimeSetUp]
    public async Task StartRedis()
    {
        if (kind == "redis")
        {
            _redis = await RedisServer.StartAsync();
            Connection = await _redis.ConnectAsync();
        }
        else if (kind == "redis-cluster")
        {
            _cluster = await RedisCluster.StartAsync(masters: 3);
            Connection = await _cluster.ConnectAsync();
        }
    }

    ServiceProvider? _metrics;

    /// <summary>
    /// Task counters of this fixture's kind, for a store to count into (the Redis one into the fixture's server), as
    /// the reader and as the store takes them; they last for the test.
    /// </summary>
    protected (ITaskCounters Reader, RedisTaskCounters? Redis, InProcessTaskCounters? InProcess) NewCounters()
    {
        _metrics ??= new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new LlmStreamMetrics(_metrics.GetRequiredService<IMeterFactory>());
        if (IsRedis)
        {
            var redis = new RedisTaskCounters(Connection!, metrics);
            return (redis, redis, null);
        }
        var inProcess = new InProcessTaskCounters(TimeProvider.System, metrics);
        return (inProcess, null, inProcess);
    }

    [TearDown]
    public void DisposeMetrics()
    {
        _metrics?.Dispose();
        _metrics = null;
    }

    [OneTimeTearDown]
    public async Task StopRedis()
    {
        Connection?.Dispose();
        if (_redis is not null)
            await _redis.DisposeAsync();
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }
}
