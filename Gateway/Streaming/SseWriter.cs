using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using LlmStream.Sessions.Streams;

namespace LlmStream.Gateway.Streaming;

/// <summary>
/// Server-Sent Events on a response, for every API that streams (/stream and /v1): the headers that keep proxies from
/// buffering, events (with an id and a type, or data alone as OpenAI's format has it), keep-alive comments. Writes
/// go to the response's pipe; nothing reaches the client before <see cref="FlushAsync"/>.
/// </summary>
public sealed class SseWriter
{
    readonly HttpResponse _response;
    readonly PipeWriter _pipe;
    readonly bool _eventNames;

    SseWriter(HttpResponse response, bool eventNames)
    {
        _response = response;
        _pipe = response.BodyWriter;
        _eventNames = eventNames;
    }

    /// <summary>
    /// Starts an event stream: its content type and the headers that keep caches and proxies out of the way. Without
    /// <paramref name="eventNames"/> (STREAM_EVENT_NAMES=false) session events go unnamed, with their name in the data,
    /// for clients that read them with EventSource's onmessage (the Python original's page).
    /// </summary>
    public static SseWriter Begin(HttpResponse response, bool eventNames = true)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // proxies must not buffer the stream
        return new SseWriter(response, eventNames);
    }

    /// <summary>How soon a browser reconnects after a drop (it sends Last-Event-ID by itself).</summary>
    public void Retry(int milliseconds)
    {
        _pipe.Write("retry: "u8);
        Encoding.UTF8.GetBytes(milliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture), _pipe);
        _pipe.Write("\n\n"u8);
    }

    /// <summary>
    /// A stream entry as an event: its id (for Last-Event-ID), its type, and its data (one line of JSON), which also
    /// carries the fields the Python original's clients read (<see cref="OriginalFields"/>).
    /// </summary>
    public void Event(StreamEntry entry)
    {
        _pipe.Write("id: "u8);
        Encoding.UTF8.GetBytes(entry.Id, _pipe);
        if (_eventNames)
        {
            _pipe.Write("\nevent: "u8);
            Encoding.UTF8.GetBytes(entry.Type, _pipe);
        }
        _pipe.Write("\ndata: "u8);
        // Data is one line of JSON: newlines inside text are escaped, so they cannot end the event.
        var data = entry.Data;
        if (data.Length > 2 && data[0] == '{')
        {
            Encoding.UTF8.GetBytes(OriginalFields(entry.Type), _pipe);
            if (!_eventNames)
            {
                _pipe.Write("\"event\":\""u8);
                Encoding.UTF8.GetBytes(entry.Type, _pipe);
                _pipe.Write("\","u8);
            }
            // A token's text is its data's last field ({"task_id":…,"attempt":…,"text":"…"}; a quote inside a JSON
            // string is escaped, so "text": cannot occur within one): the original's content repeats it.
            var text = entry.Type == StreamEventTypes.Token ? data.LastIndexOf("\"text\":", StringComparison.Ordinal) : -1;
            if (text > 0)
            {
                Encoding.UTF8.GetBytes(data.AsSpan(1, data.Length - 2), _pipe);
                _pipe.Write(",\"content\":"u8);
                Encoding.UTF8.GetBytes(data.AsSpan(text + 7), _pipe);
            }
            else
                Encoding.UTF8.GetBytes(data.AsSpan(1), _pipe);
        }
        else
            Encoding.UTF8.GetBytes(data, _pipe);
        _pipe.Write("\n\n"u8);
    }

    /// <summary>
    /// The start of an event's data with the fields the Python original's clients read: its <c>type</c> (status, chunk,
    /// complete, error), a status event's <c>status</c>, and for a cancelled task the error that ends their loop.
    /// </summary>
    static string OriginalFields(string type) => type switch
    {
        StreamEventTypes.Queued => "{\"type\":\"status\",\"status\":\"queued\",",
        StreamEventTypes.Started => "{\"type\":\"status\",\"status\":\"started\",",
        StreamEventTypes.Token => "{\"type\":\"chunk\",",
        StreamEventTypes.Done => "{\"type\":\"complete\",",
        StreamEventTypes.Error => "{\"type\":\"error\",",
        StreamEventTypes.Cancelled => "{\"type\":\"error\",\"error\":\"cancelled\",",
        _ => "{",
    };

    /// <summary>An event of data alone, written as JSON by <paramref name="write"/> (OpenAI's chunks).</summary>
    public void Data(Action<Utf8JsonWriter> write)
    {
        _pipe.Write("data: "u8);
        using (var json = new Utf8JsonWriter(_pipe))
            write(json);
        _pipe.Write("\n\n"u8);
    }

    /// <summary>A named event whose data is written as JSON by <paramref name="write"/> (the Responses API's events).</summary>
    public void Named(string type, Action<Utf8JsonWriter> write)
    {
        _pipe.Write("event: "u8);
        Encoding.UTF8.GetBytes(type, _pipe);
        _pipe.Write("\n"u8);
        Data(write);
    }

    /// <summary>A data line as it is (OpenAI's closing <c>[DONE]</c>).</summary>
    public void Data(ReadOnlySpan<byte> raw)
    {
        _pipe.Write("data: "u8);
        _pipe.Write(raw);
        _pipe.Write("\n\n"u8);
    }

    /// <summary>A comment, which clients skip: it keeps an idle connection from being closed by a proxy.</summary>
    public void KeepAlive() => _pipe.Write(": keep-alive\n\n"u8);

    public async Task FlushAsync(CancellationToken cancellationToken) => await _pipe.FlushAsync(cancellationToken);

    public HttpResponse Response => _response;
}
