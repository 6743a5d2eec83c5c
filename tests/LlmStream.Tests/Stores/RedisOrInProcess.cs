using LlmStream.Tests.Infrastructure;
using StackExchange.Redis;

namespace LlmStream.Tests.Stores;

/// <summary>
/// Specs that hold for the Redis implementation and the single-process one alike: the fixture named "redis" gets
/// its own redis-server and a connection to it, the other none.
/// </summary>
public abstract class RedisOrInProcess(string kind)
{
    RedisServer? _redis;

    protected string Kind => kind;

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
    }

    [OneTimeTearDown]
    public async Task StopRedis()
    {
        Connection?.Dispose();
        if (_redis is not null)
            await _redis.DisposeAsync();
    }
}
