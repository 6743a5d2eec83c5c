using System.Text.Json.Serialization;
using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Tasks;

[JsonConverter(typeof(JsonStringEnumConverter<TaskState>))]
public enum TaskState { Queued, Started, Completed, Failed, Cancelled }

public static class TaskStates
{
    public static bool IsTerminal(this TaskState state) => state is TaskState.Completed or TaskState.Failed or TaskState.Cancelled;

    /// <summary>The stream event that ends a task in this state.</summary>
    public static string TerminalEvent(this TaskState state) => state switch
    {
        TaskState.Completed => StreamEventTypes.Done,
        TaskState.Failed => StreamEventTypes.Error,
        TaskState.Cancelled => StreamEventTypes.Cancelled,
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, "not a terminal state"),
    };

    public static string ToWire(this TaskState state) => state switch
    {
        TaskState.Queued => "queued",
        TaskState.Started => "started",
        TaskState.Completed => "completed",
        TaskState.Failed => "failed",
        TaskState.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static TaskState FromWire(string value) => value switch
    {
        "queued" => TaskState.Queued,
        "started" => TaskState.Started,
        "completed" => TaskState.Completed,
        "failed" => TaskState.Failed,
        "cancelled" => TaskState.Cancelled,
        _ => throw new FormatException($"unknown task state '{value}'"),
    };
}

/// <summary>What a gateway and the workers know about one chat task.</summary>
public sealed record TaskRecord
{
    public required string TaskId { get; init; }
    public required string SessionId { get; init; }
    public required TaskState State { get; init; }
    public required string Model { get; init; }
    public int Priority { get; init; }
    public string? UserId { get; init; }
    public string? ApiKeyName { get; init; }

    /// <summary>What the user said (POST /chat): with the answer (<see cref="Result"/>), a turn a later task of the session remembers.</summary>
    public string? Message { get; init; }

    /// <summary>For a /v1/responses task: what the request asked for, as JSON (the gateway's and the worker's StoredResponse).</summary>
    public string? Response { get; init; }

    /// <summary>
    /// The id of the task's queued event in its session's stream: a reader of this task alone starts there, not at the
    /// session's first turn. Absent from records created before it was kept.
    /// </summary>
    public string? StreamStart { get; init; }

    /// <summary>How many earlier turns of the session the current attempt sent with the message (0: none).</summary>
    public int HistoryTurns { get; init; }

    public int Attempt { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public string? Result { get; init; }
    public string? Error { get; init; }

    /// <summary>For a failed task: how the failure reads to an OpenAI client (absent for failures before it was recorded).</summary>
    public FailureDetail? Failure { get; init; }

    public string? FinishReason { get; init; }
    public TokenUsage? Usage { get; init; }
    public DateTimeOffset? RateLimitedUntil { get; init; }

    /// <summary>The function calls the model asked for, as a JSON array of {id, name, arguments}.</summary>
    public string? ToolCalls { get; init; }

    /// <summary>The worker process running the current attempt (its heartbeat id).</summary>
    public string? Worker { get; init; }
}

/// <summary>How a task ended. <see cref="Attempt"/> guards against a stale attempt finishing a task another attempt owns.</summary>
public sealed record TaskOutcome
{
    public required string TaskId { get; init; }
    public required string SessionId { get; init; }
    public required TaskState State { get; init; }
    public int? Attempt { get; init; }

    /// <summary>With <see cref="Attempt"/>: the task ends only if this worker still runs that attempt (the orphan check).</summary>
    public string? Worker { get; init; }
    public string? Result { get; init; }
    public string? Error { get; init; }
    public FailureDetail? Failure { get; init; }
    public string? FinishReason { get; init; }
    public TokenUsage? Usage { get; init; }
    public string? ToolCalls { get; init; }
}
