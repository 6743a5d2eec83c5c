using System.Globalization;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace LlmStream.Sessions.Streams;

/// <summary>The one Redis pub/sub subscription of a gateway process: every stream append wakes that session's local readers.</summary>
public sealed class RedisWakeSubscriber(IConnectionMultiplexer redis, StreamSignals signals) : IHostedService
{
    static readonly RedisChannel Channel = RedisChannel.Literal(WakeMessage.Channel);

    public Task StartAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().SubscribeAsync(Channel, (_, message) => WakeMessage.Dispatch(((string?)message).AsSpan(), signals));

    public Task StopAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().UnsubscribeAsync(Channel);
}

/// <summary>
/// What the stores publish on <see cref="Channel"/>: either a bare session id (or an embedding
/// task's wake key), or "#" and then, line by line, for each session its id, the id of the entry before the new
/// ones, their number, and each new token event's id and data (one line of JSON).
/// </summary>
public static class WakeMessage
{
    /// <summary>The one channel every stream append is published on (the stores' scripts name it too).</summary>
    public const string Channel = "llmstream:wake";

    public static void Dispatch(ReadOnlySpan<char> message, StreamSignals signals)
    {
        if (message is not ['#', '\n', ..])
        {
            signals.Notify(message);
            return;
        }
        var rest = message[2..];
        while (!rest.IsEmpty)
        {
            var session = NextLine(ref rest);
            var previousId = NextLine(ref rest);
            var count = int.Parse(NextLine(ref rest), NumberStyles.None, CultureInfo.InvariantCulture);
            if (!signals.IsWatched(session))
            {
                for (var i = 0; i < 2 * count; i++)
                    NextLine(ref rest);
                continue;
            }
            var entries = new StreamEntry[count];
            for (var i = 0; i < count; i++)
            {
                var id = NextLine(ref rest).ToString();
                entries[i] = new StreamEntry(id, StreamEventTypes.Token, NextLine(ref rest).ToString());
            }
            signals.Push(session, previousId.ToString(), entries);
        }
    }

    static ReadOnlySpan<char> NextLine(ref ReadOnlySpan<char> rest)
    {
        var end = rest.IndexOf('\n');
        var line = end < 0 ? rest : rest[..end];
        rest = end < 0 ? [] : rest[(end + 1)..];
        return line;
    }
}
