using System.Runtime.CompilerServices;
using LlmStream.Sessions.Streams;

namespace LlmStream.Gateway.Streaming;

/// <summary>What a follower hands on: entries (oldest first), or a quiet interval passed with nothing new.</summary>
public readonly record struct StreamBatch(IReadOnlyList<StreamEntry> Entries)
{
    public static readonly StreamBatch Quiet = new([]);

    public bool IsQuiet => Entries.Count == 0;
}

/// <summary>
/// Follows a session's stream for one client, for every API that streams (/stream and /v1): the entries after a given
/// id, then each new batch as it arrives, woken by <see cref="StreamSignals"/> (tokens often come with the wake-up, so
/// no read), never polling. Ends once it has caught up with a terminal event, or when the session expired.
/// </summary>
public static class StreamFollower
{
    /// <summary>At most this many entries are read at once: a slow client holds one batch in memory, not its backlog.</summary>
    public const int BatchSize = 256;

    /// <summary>How often an idle follower checks that its session has not expired meanwhile.</summary>
    public static readonly TimeSpan ExpiryCheck = TimeSpan.FromMinutes(5);

    /// <param name="quiet">After this long with nothing new a <see cref="StreamBatch.Quiet"/> batch comes (a keep-alive is due).
    /// Nothing is read then unless wake-ups may have been lost (<see cref="StreamSignals.WakesMayBeLost"/>), or the
    /// <see cref="ExpiryCheck"/> is due: an idle stream costs its keep-alives and no Redis call.</param>
    public static async IAsyncEnumerable<StreamBatch> FollowAsync(ISessionStreams store, StreamSignals signals, string sessionId, string after,
        TimeSpan quiet, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var watch = await signals.WatchAsync(sessionId);
        var last = after;
        var lastWasTerminal = false;
        var quietBetweenChecks = Math.Max(1, (int)(ExpiryCheck / quiet));
        var quietIntervals = 0;
        while (true)
        {
            var entries = await watch.ReadAfterAsync(store, last, BatchSize, cancellationToken);
            if (entries.Count > 0)
            {
                yield return new StreamBatch(entries);
                last = entries[^1].Id;
                lastWasTerminal = entries[^1].IsTerminal;
                if (entries.Count == BatchSize)
                    continue;
            }
            if (lastWasTerminal)
                yield break; // caught up, and the last task of the session has ended
            if (!await watch.WaitAsync(quiet, cancellationToken))
            {
                yield return StreamBatch.Quiet;
                if (++quietIntervals % quietBetweenChecks == 0 && await store.LastAsync(sessionId, cancellationToken) is null)
                    yield break; // the session expired while we waited
            }
        }
    }
}
