using System.Globalization;
using LlmStream.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace LlmStream.Sessions.Streams;

/// <summary>
/// The wake channels of the keys this process watches, each subscribed (Redis 7 sharded pub/sub, so on a Redis Cluster
/// only the node holding the key's shard carries it) while the key has a reader here.
/// </summary>
public sealed class RedisWakeSource : IWakeSource
{
    readonly IConnectionMultiplexer _redis;
    readonly LlmStreamMetrics? _metrics;

    public RedisWakeSource(IConnectionMultiplexer redis, LlmStreamMetrics? metrics = null)
    {
        _redis = redis;
        _metrics = metrics;
        // Messages published while a subscription's connection was down, or before it followed moved slots, are gone.
        redis.ConnectionFailed += (_, _) => WakesMayBeLost?.Invoke();
        redis.ConnectionRestored += (_, _) => WakesMayBeLost?.Invoke();
        redis.HashSlotMoved += (_, _) => WakesMayBeLost?.Invoke();
        redis.ConfigurationChanged += (_, _) => WakesMayBeLost?.Invoke();
    }

    public event Action? WakesMayBeLost;

    public async Task<IAsyncDisposable> SubscribeAsync(string watchKey, string shardId, StreamSignals signals)
    {
        var channel = RedisChannel.Sharded(WakeChannel.Name(watchKey, shardId));
        Action<RedisChannel, RedisValue> handler = (_, message) =>
        {
            var tokenEvents = WakeMessage.Dispatch(watchKey, ((string?)message).AsSpan(), signals);
            _metrics?.WakeReceived(tokenEvents);
        };
        var subscriber = _redis.GetSubscriber();
        await subscriber.SubscribeAsync(channel, handler);
        return new Subscription(subscriber, channel, handler);
    }

    sealed class Subscription(ISubscriber subscriber, RedisChannel channel, Action<RedisChannel, RedisValue> handler) : IAsyncDisposable
    {
        // Only this handler goes: a reader of the same key that subscribed again meanwhile keeps its own.
        public async ValueTask DisposeAsync() => await subscriber.UnsubscribeAsync(channel, handler);
    }
}

/// <summary>The channel a watched key's wake-ups are published on, in the shard of the data they are about.</summary>
public static class WakeChannel
{
    /// <param name="watchKey">What readers watch: a session id, or an embedding batch's <c>EmbeddingWake.Key</c>.</param>
    /// <param name="shardId">The id whose shard the data lives in (the session's, the batch's): the scripts that write
    /// it publish here, and a Redis Cluster requires a script's channel in its keys' slot.</param>
    public static string Name(string watchKey, string shardId) => $"llmstream:{SessionShards.TagOf(shardId)}:wake:{watchKey}";

    public static string ForSession(string sessionId) => Name(sessionId, sessionId);
}

/// <summary>
/// What the stores publish on a key's wake channel: nothing (the stream grew: read it), or "#" and then, line by line,
/// the id of the entry before the new ones, their number, and each new token event's id and data (one line of JSON).
/// </summary>
public static class WakeMessage
{
    /// <returns>The number of token events the message carried.</returns>
    public static int Dispatch(string watchKey, ReadOnlySpan<char> message, StreamSignals signals)
    {
        if (message is not ['#', '\n', ..])
        {
            signals.Notify(watchKey);
            return 0;
        }
        var rest = message[2..];
        var previousId = TextLines.Next(ref rest).ToString();
        var count = int.Parse(TextLines.Next(ref rest), NumberStyles.None, CultureInfo.InvariantCulture);
        var entries = new StreamEntry[count];
        for (var i = 0; i < count; i++)
        {
            var id = TextLines.Next(ref rest).ToString();
            entries[i] = new StreamEntry(id, StreamEventTypes.Token, TextLines.Next(ref rest).ToString());
        }
        signals.Push(watchKey, previousId, entries);
        return count;
    }
}
