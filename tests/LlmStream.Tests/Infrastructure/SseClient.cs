using System.Runtime.CompilerServices;
using System.Text;

namespace LlmStream.Tests.Infrastructure;

public sealed record SseEvent(string? Id, string Event, string Data);

/// <summary>A strict reader of text/event-stream, as a browser's EventSource would parse it.</summary>
public static class SseClient
{
    public static async IAsyncEnumerable<SseEvent> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? id = null, type = null;
        var data = new StringBuilder();
        var hasData = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (hasData)
                    yield return new SseEvent(id, type ?? "message", data.ToString());
                type = null;
                data.Clear();
                hasData = false;
                continue;
            }
            if (line[0] == ':')
                continue; // comment (keep-alive)
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "id": id = value; break;
                case "event": type = value; break;
                case "data":
                    if (hasData) data.Append('\n');
                    data.Append(value);
                    hasData = true;
                    break;
            }
        }
    }

    /// <summary>Reads a whole stream until the server ends it, bounded in time.</summary>
    public static async Task<List<SseEvent>> ReadAllAsync(HttpClient http, string url, TimeSpan timeout, string? lastEventId = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (lastEventId is not null)
            request.Headers.Add("Last-Event-ID", lastEventId);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        response.EnsureSuccessStatusCode();
        var events = new List<SseEvent>();
        await foreach (var e in ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
            events.Add(e);
        return events;
    }
}
