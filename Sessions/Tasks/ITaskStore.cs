using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Tasks;

public enum CreateResult { Created, DuplicateTask, SessionBusy }

/// <summary>
/// Task records and the per-session event streams, changed together so that a reader never sees
/// a task state without the stream event that goes with it. Redis in a cluster; in process in the
/// single-process default.
/// </summary>
public interface ITaskStore : ISessionStreams
{
    /// <summary>
    /// Creates the record and appends the queued event, unless the task id exists or another task of the
    /// session has not ended yet (one running task per session, so its stream never interleaves two answers).
    /// </summary>
    Task<CreateResult> CreateAsync(TaskRecord task, string queuedEventData, CancellationToken cancellationToken);

    /// <summary>
    /// Starts the next attempt and appends a started event carrying its number.
    /// Null when the task is finished already (a redelivered message must not answer twice) or unknown.
    /// <paramref name="workerId"/> (the worker's heartbeat id) goes on record: a task whose worker died can be found;
    /// so does the number of earlier turns the attempt sends (<see cref="TaskRecord.HistoryTurns"/>).
    /// </summary>
    Task<int?> StartAttemptAsync(string taskId, string sessionId, string? workerId, int historyTurns, CancellationToken cancellationToken);

    /// <summary>
    /// The records of the session's tasks created before <paramref name="taskId"/>, oldest first: <paramref name="count"/>
    /// of them, after the newest <paramref name="skip"/> (a page, read from the newest back; at most
    /// <see cref="TaskStoreLimits.TurnsKept"/> are kept), those expired left out. A session's task ids are kept as long as
    /// its tasks, so its memory expires with it.
    /// </summary>
    Task<IReadOnlyList<TaskRecord>> EarlierTasksAsync(string sessionId, string taskId, int skip, int count, CancellationToken cancellationToken);

    /// <summary>
    /// Appends the token events of several running attempts in one call (a worker sends all its streams' new tokens
    /// together). Each append is made only while its attempt is still the task's running one; the result says, per
    /// append and in order, whether it was.
    /// </summary>
    Task<bool[]> AppendTokensAsync(IReadOnlyList<TokenAppend> appends, CancellationToken cancellationToken);

    /// <summary>Moves the task to its terminal state and appends the terminal event, once. False when it had ended already.</summary>
    Task<bool> FinishAsync(TaskOutcome outcome, string terminalEventData, CancellationToken cancellationToken);

    Task<TaskRecord?> GetAsync(string taskId, CancellationToken cancellationToken);

    /// <summary>
    /// Removes an ended task's record (DELETE /v1/responses/{id}): it can no longer be read, nor continued, nor sent as a
    /// turn. Its events stay in the session's stream until it expires. False when it is unknown or has not ended.
    /// </summary>
    Task<bool> DeleteAsync(string taskId, CancellationToken cancellationToken);

    /// <summary>Shows in the task's status that it waits for the provider's rate limit until then (null: it no longer waits).</summary>
    Task SetRateLimitedUntilAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken);

    /// <summary>
    /// Binds an Idempotency-Key (within <paramref name="scope"/>, e.g. the API key's name) to a new task, or returns
    /// the task it is bound to already, with the fingerprint of the request that bound it. Bound for the retention period.
    /// </summary>
    Task<IdempotencyBinding?> BindIdempotencyKeyAsync(string scope, string key, IdempotencyBinding binding, CancellationToken cancellationToken);

    /// <summary>Frees a key whose task could not be created, so that a retry of the request can go through.</summary>
    Task ReleaseIdempotencyKeyAsync(string scope, string key, CancellationToken cancellationToken);
}

public static class TaskStoreLimits
{
    /// <summary>The task ids a session keeps for its memory: older ones are dropped (no budget would send them anyway).</summary>
    public const int TurnsKept = 200;
}

/// <summary>New token events of one running attempt, oldest first.</summary>
public sealed record TokenAppend(string TaskId, string SessionId, int Attempt, IReadOnlyList<string> EventData);

public static class TaskStoreAppends
{
    /// <summary>Appends one attempt's token events; false when the attempt is no longer current.</summary>
    public static async Task<bool> AppendTokensAsync(this ITaskStore store, string taskId, string sessionId, int attempt,
        IReadOnlyList<string> eventData, CancellationToken cancellationToken) =>
        (await store.AppendTokensAsync([new TokenAppend(taskId, sessionId, attempt, eventData)], cancellationToken))[0];
}

/// <summary>The task an Idempotency-Key stands for, and a fingerprint of the request that first used it.</summary>
public sealed record IdempotencyBinding(string TaskId, string SessionId, string Fingerprint);
