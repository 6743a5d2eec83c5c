using StackExchange.Redis;

namespace LlmStream.Messaging;

/// <summary>
/// When each message still waiting on a MassTransit queue was sent, for the oldest waiting age: RabbitMQ's AMQP API
/// counts a queue's messages but cannot tell their age without taking them. (BROKER=redis reads it from the stream
/// ids instead.) A message is written before its send and removed once it starts, fails to send, or is dead-lettered.
/// </summary>
public interface IWaitingLedger
{
    Task AddAsync(string queue, Guid messageId, DateTimeOffset sentAt);

    Task RemoveAsync(string queue, Guid messageId);

    /// <summary>The send time of the oldest message not yet started, if any.</summary>
    Task<DateTimeOffset?> OldestAsync(string queue, DateTimeOffset now);

    /// <summary>Messages sent and not yet started (BROKER=inmemory has no other way to count them).</summary>
    Task<long> CountAsync(string queue);
}

/// <summary>A sorted set per queue, scored by send time.</summary>
public sealed class RedisWaitingLedger(IConnectionMultiplexer redis) : IWaitingLedger
{
    /// <summary>A message left behind (purged by hand from the broker) stops counting after this long.</summary>
    static readonly TimeSpan Forget = TimeSpan.FromDays(1);

    static RedisKey Key(string queue) => "llmstream:waiting:" + queue;

    // Not awaited by the request: the ledger only feeds the oldest-waiting figure. Sent on the connection before the
    // message goes to the broker, it reaches Redis before the worker's removal, which needs the delivered message.
    public Task AddAsync(string queue, Guid messageId, DateTimeOffset sentAt) =>
        redis.GetDatabase().SortedSetAddAsync(Key(queue), messageId.ToString("N"), sentAt.ToUnixTimeMilliseconds(), CommandFlags.FireAndForget);

    public Task RemoveAsync(string queue, Guid messageId) =>
        redis.GetDatabase().SortedSetRemoveAsync(Key(queue), messageId.ToString("N"), CommandFlags.FireAndForget);

    public async Task<DateTimeOffset?> OldestAsync(string queue, DateTimeOffset now)
    {
        var db = redis.GetDatabase();
        await db.SortedSetRemoveRangeByScoreAsync(Key(queue), double.NegativeInfinity, (now - Forget).ToUnixTimeMilliseconds());
        var oldest = await db.SortedSetRangeByRankWithScoresAsync(Key(queue), 0, 0);
        return oldest.Length == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)oldest[0].Score);
    }

    public Task<long> CountAsync(string queue) => redis.GetDatabase().SortedSetLengthAsync(Key(queue));
}

/// <summary>The single-process default.</summary>
public sealed class InProcessWaitingLedger : IWaitingLedger
{
    readonly Lock _lock = new();
    readonly Dictionary<string, Dictionary<Guid, DateTimeOffset>> _queues = [];

    public Task AddAsync(string queue, Guid messageId, DateTimeOffset sentAt)
    {
        lock (_lock)
        {
            if (!_queues.TryGetValue(queue, out var waiting))
                _queues[queue] = waiting = [];
            waiting[messageId] = sentAt;
        }
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string queue, Guid messageId)
    {
        lock (_lock)
            _queues.GetValueOrDefault(queue)?.Remove(messageId);
        return Task.CompletedTask;
    }

    public Task<DateTimeOffset?> OldestAsync(string queue, DateTimeOffset now)
    {
        lock (_lock)
        {
            var waiting = _queues.GetValueOrDefault(queue);
            return Task.FromResult<DateTimeOffset?>(waiting is { Count: > 0 } ? waiting.Values.Min() : null);
        }
    }

    public Task<long> CountAsync(string queue)
    {
        lock (_lock)
            return Task.FromResult<long>(_queues.GetValueOrDefault(queue)?.Count ?? 0);
    }
}
