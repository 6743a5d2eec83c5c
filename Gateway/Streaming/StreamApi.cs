using LlmStream.Gateway.Access;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Streaming;

/// <summary>GET /stream/{session_id}: the session's events as Server-Sent Events, resumable with Last-Event-ID.</summary>
public static class StreamApi
{
    public static string StreamUrl(string sessionId) => $"/stream/{sessionId}";

    public static IEndpointRouteBuilder MapStreamApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/stream/{session_id}", GetStream)
            .WithTags("Stream")
            .WithSummary("Stream a session's events (SSE)")
            .WithDescription("One event per token; id is the stream entry id. Reconnect with Last-Event-ID (header or ?last_event_id=) " +
                             "to resume after that event. Each task ends with one done, error or cancelled event.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        return app;
    }

    static async Task<Results<SessionStreamResult, ProblemHttpResult>> GetStream(
        string session_id, HttpRequest request, ITaskStore store, StreamSignals signals, IOptions<GatewayOptions> options,
        CancellationToken cancellationToken)
    {
        string? lastEventId = request.Headers["Last-Event-ID"].FirstOrDefault() ?? request.Query["last_event_id"].FirstOrDefault();
        if (!string.IsNullOrEmpty(lastEventId) && !StreamId.TryParse(lastEventId, out _))
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid Last-Event-ID",
                detail: $"'{lastEventId}' is not an event id of this stream (expected the form 1718000000000-0)",
                extensions: new Dictionary<string, object?> { ["field"] = "last_event_id" });

        var last = Ids.IsValidClientId(session_id) ? await store.LastAsync(session_id, cancellationToken) : null;
        if (last is null || !await request.HttpContext.CanUseSessionAsync(store, session_id, cancellationToken))
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown session",
                detail: $"no stream for session '{session_id}': it never existed or has expired");

        var after = string.IsNullOrEmpty(lastEventId) ? "0" : lastEventId;
        if (StreamId.Parse(after).CompareTo(StreamId.Parse(last.Id)) > 0)
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid Last-Event-ID",
                detail: $"'{lastEventId}' is after the newest event of this session ({last.Id}): it did not come from this stream",
                extensions: new Dictionary<string, object?> { ["field"] = "last_event_id" });
        // Resuming after the terminal event of a finished session: nothing more will come.
        var finished = last.IsTerminal && StreamId.Parse(after).CompareTo(StreamId.Parse(last.Id)) >= 0;
        return new SessionStreamResult(session_id, after, finished, store, signals, options.Value.KeepAlive, options.Value.StreamEventNames);
    }
}
