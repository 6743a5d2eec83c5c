using System.Text;
using LlmStream.Messaging.RedisStreams;
using LlmStream.Tests.Infrastructure;
using StackExchange.Redis;

namespace LlmStream.Tests.Stores;

/// <summary>
/// The Redis Streams queue's own rules, against a real redis-server and a Redis Cluster: the dead letters after too
/// many deliveries, and a queue whose stream or group was deleted.
/// </summary>
[TestFixture("redis")]
[TestFixture("redis-cluster")]
public sealed class Redis_work_queue_semantics(string kind)
{
    IAsyncDisposable _redis = null!;
    ConnectionMultiplexer _connection = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        if (kind == "redis-cluster")
        {
            var cluster = await RedisCluster.StartAsync(masters: 3);
            (_redis, _connection) = (cluster, await cluster.ConnectAsync());
        }
        else
        {
            var server = await RedisServer.StartAsync();
            (_redis, _connection) = (server, await server.ConnectAsync());
        }
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _connection.Dispose();
        await _redis.DisposeAsync();
    }

    [Test]
    public async Task A_message_delivered_more_than_the_limit_without_an_ack_goes_to_the_dead_letters_with_why()
    {
        var queue = $"q-{Guid.NewGuid():N}";
        var work = new RedisWorkQueue(_connection);
        await work.EnsureGroupAsync(queue);
        var deadBefore = await work.DeadLetterCountAsync();
        await work.SendAsync(queue, "m-1", "chat", Encoding.UTF8.GetBytes("{}"));

        // Delivered to a worker that dies (no ack), then taken over by another that dies too: two deliveries.
        Assert.That(await work.ReadNewAsync(queue, 1, "dies-first", 10), Has.Count.EqualTo(1));
        var (claimed, dead) = await work.ReclaimAsync(queue, 1, "dies-second", TimeSpan.Zero, 10, maxDeliveries: 2);
        Assert.That((claimed.Count, dead.Count), Is.EqualTo((1, 0)), "the second delivery is within the limit");

        // The third would pass the limit: the entry moves to the dead letters instead of running again.
        (claimed, dead) = await work.ReclaimAsync(queue, 1, "third", TimeSpan.Zero, 10, maxDeliveries: 2);
        Assert.That((claimed.Count, dead.Count), Is.EqualTo((0, 1)));
        Assert.That(dead[0].MessageId, Is.EqualTo("m-1"));
        Assert.That(await work.DeadLetterCountAsync(), Is.EqualTo(deadBefore + 1));
        var letter = (await _connection.GetDatabase().StreamRangeAsync(RedisWorkQueue.DeadLetters, "-", "+")).Last();
        Assert.That(letter["queue"].ToString(), Is.EqualTo(queue));
        Assert.That(letter["id"].ToString(), Is.EqualTo("m-1"));
        Assert.That(letter["error"].ToString(), Does.Contain("delivered 3 times without being acknowledged"));
        Assert.That(await work.DepthAsync(queue), Is.EqualTo((0L, 0L)), "nothing of it is left in the work stream");
    }

    [Test]
    public async Task A_queue_whose_stream_was_deleted_is_recreated_and_goes_on()
    {
        var queue = $"q-{Guid.NewGuid():N}";
        var work = new RedisWorkQueue(_connection);
        await work.EnsureGroupAsync(queue);
        var db = _connection.GetDatabase();
        await db.KeyDeleteAsync(RedisWorkQueue.StreamKey(queue)); // as FLUSHALL or a careless DEL would
        var (reclaimed, deadLettered) = await work.ReclaimAsync(queue, 1, "worker", TimeSpan.Zero, 10, 5);
        Assert.That(reclaimed.Concat(deadLettered), Is.Empty, "NOGROUP on the takeover scan: the group is recreated");
        Assert.That(await db.KeyExistsAsync(RedisWorkQueue.StreamKey(queue)), Is.True);

        await db.KeyDeleteAsync(RedisWorkQueue.StreamKey(queue));
        Assert.That(await work.ReadNewAsync(queue, 1, "worker", 10), Is.Empty, "NOGROUP on a read: the group is recreated");
        await work.SendAsync(queue, "m-after", "chat", Encoding.UTF8.GetBytes("{}"));
        var read = await work.ReadNewAsync(queue, 1, "worker", 10);
        Assert.That(read.Select(e => e.MessageId), Is.EqualTo(new[] { "m-after" }));
        Assert.That(await work.AckAsync(read[0], "worker"), Is.True);
    }
}
