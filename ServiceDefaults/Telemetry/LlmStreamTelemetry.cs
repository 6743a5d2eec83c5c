using System.Diagnostics;

namespace LlmStream.ServiceDefaults.Telemetry;

/// <summary>
/// The names LlmStream's own spans and instruments go under, and its span source. Spans carry the ids a person
/// searches logs with, so a trace and the log lines of one task can be found from each other.
/// </summary>
public static class LlmStreamTelemetry
{
    /// <summary>The ActivitySource of LlmStream's own spans (chat.generate, embeddings.chunk, Redis queue send and process).</summary>
    public const string SourceName = "LlmStream";

    /// <summary>The Meter of LlmStream's instruments; a gateway adds cluster-wide gauges to <see cref="LlmStreamMetrics.Meter"/>.</summary>
    public const string MeterName = "LlmStream";

    public const string TaskIdTag = "llmstream.task_id";
    public const string SessionIdTag = "llmstream.session_id";
    public const string ModelTag = "gen_ai.request.model";
    public const string AttemptTag = "llmstream.attempt";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>Names a task on the current span (a gateway's request, a worker's consume), so traces can be searched by task.</summary>
    public static void TagTask(this Activity? activity, string taskId, string? sessionId = null)
    {
        if (activity is null)
            return;
        activity.SetTag(TaskIdTag, taskId);
        if (sessionId is not null)
            activity.SetTag(SessionIdTag, sessionId);
    }

    /// <summary>A span that ended in failure says so, with the reason a person can read.</summary>
    public static void Fail(this Activity? activity, string reason) => activity?.SetStatus(ActivityStatusCode.Error, reason);
}
