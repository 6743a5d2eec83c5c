using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.Streaming;

/// <summary>
/// Writes a session's stream as SSE: every entry after <c>after</c>, then new ones as they arrive (<see cref="StreamFollower"/>),
/// a keep-alive comment while idle; ends once it has caught up with a terminal event. Leaving does not cancel the
/// generation (DELETE does).
/// </summary>
public sealed class SessionStreamResult(
    string sessionId, string after, bool finished, ITaskStore store, StreamSignals signals, TimeSpan keepAlive, bool eventNames = true) : IResult
{
    public async Task ExecuteAsync(HttpContext context)
    {
        var sse = SseWriter.Begin(context.Response, eventNames);
        // A stopping gateway lets its readers go at once: they resume on another one with Last-Event-ID (browsers by themselves).
        var stop = context.RequestServices.GetRequiredService<GracefulStop>();
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stop.Stopping);
        var cancellationToken = reading.Token;

        sse.Retry(2000);
        await sse.FlushAsync(cancellationToken);
        if (finished)
            return; // resumed after the terminal event of a finished session: nothing more will come

        using var open = context.RequestServices.GetRequiredService<LlmStreamMetrics>().StreamOpened("stream");
        try
        {
            // A batch is flushed before the next is read: a slow client holds one batch in memory, not its backlog.
            await foreach (var batch in StreamFollower.FollowAsync(store, signals, sessionId, after, keepAlive, cancellationToken))
            {
                if (batch.IsQuiet)
                    sse.KeepAlive();
                foreach (var entry in batch.Entries)
                    sse.Event(entry);
                await sse.FlushAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client left (or this gateway stops); the generation goes on and the stream stays readable.
        }
    }
}
