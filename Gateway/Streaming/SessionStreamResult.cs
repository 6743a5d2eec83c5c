using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.Streaming;

/// <summary>
/// Writes a session's stream as SSE: every entry after <c>after</c>, then new ones as they arrive, woken by
/// <see cref="StreamSignals"/>; a keep-alive comment while idle; ends once it has caught up with a terminal event.
/// Leaving does not cancel the generation (DELETE does).
/// </summary>
public sealed class SessionStreamResult(
    string sessionId, string after, bool finished, ITaskStore store, StreamSignals signals, TimeSpan keepAlive) : IResult
{
    const int BatchSize = 256;
    static readonly byte[] KeepAliveComment = ": keep-alive\n\n"u8.ToArray();

    public async Task ExecuteAsync(HttpContext context)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // proxies must not buffer the stream
        var writer = response.BodyWriter;
        // A stopping gateway lets its readers go at once: they resume on another one with Last-Event-ID (browsers by themselves).
        var stop = context.RequestServices.GetRequiredService<GracefulStop>();
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stop.Stopping);
        var cancellationToken = reading.Token;

        // Tell the browser how soon to reconnect; it sends Last-Event-ID by itself.
        writer.Write("retry: 2000\n\n"u8);
        await writer.FlushAsync(cancellationToken);
        if (finished)
            return;

        using var open = context.RequestServices.GetRequiredService<LlmStreamMetrics>().StreamOpened("stream");
        using var watch = signals.Watch(sessionId);
        var lastId = after;
        var lastWasTerminal = false;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // Tokens pushed with the wake when they follow on from what this client has; the store otherwise.
                var entries = await watch.ReadAfterAsync(store, lastId, BatchSize, cancellationToken);
                if (entries.Count > 0)
                {
                    foreach (var entry in entries)
                        WriteEvent(writer, entry);
                    await writer.FlushAsync(cancellationToken);
                    lastId = entries[^1].Id;
                    lastWasTerminal = entries[^1].IsTerminal;
                    if (entries.Count == BatchSize)
                        continue;
                }

                if (lastWasTerminal)
                    return; // caught up, and the last task of the session has ended

                if (!await watch.WaitAsync(keepAlive, cancellationToken))
                {
                    writer.Write(KeepAliveComment);
                    await writer.FlushAsync(cancellationToken);
                    if (await store.LastAsync(sessionId, cancellationToken) is null)
                        return; // the session expired while we waited
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client left (or this gateway stops); the generation goes on and the stream stays readable.
        }
    }

    static void WriteEvent(PipeWriter writer, StreamEntry entry)
    {
        writer.Write("id: "u8);
        Encoding.UTF8.GetBytes(entry.Id, writer);
        writer.Write("\nevent: "u8);
        Encoding.UTF8.GetBytes(entry.Type, writer);
        writer.Write("\ndata: "u8);
        // Data is one line of JSON: newlines inside text are escaped, so they cannot end the event.
        Encoding.UTF8.GetBytes(entry.Data, writer);
        writer.Write("\n\n"u8);
    }
}
