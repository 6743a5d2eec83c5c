using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Tasks;

public static class TaskStoreOutcomes
{
    /// <summary>
    /// Ends a task as failed with a reason a person can read, and its error event, in one store call.
    /// False when the task had ended already (or, with <paramref name="attempt"/>, another attempt owns it).
    /// </summary>
    /// <param name="failure">How the failure reads to an OpenAI client; a server error nobody can mend by retrying when absent.</param>
    public static Task<bool> FailAsync(this ITaskStore store, string taskId, string sessionId, string reason, int? attempt = null, FailureDetail? failure = null) =>
        store.FinishAsync(new TaskOutcome
        {
            TaskId = taskId,
            SessionId = sessionId,
            State = TaskState.Failed,
            Attempt = attempt,
            Error = reason,
            Failure = failure ?? FailureDetail.Internal,
        }, StreamEvents.Error(taskId, attempt, reason, failure ?? FailureDetail.Internal), CancellationToken.None);

    /// <summary>
    /// Fails a task that no worker has started: for a send the broker did not confirm, which may have reached the queue
    /// all the same. False when a worker has started it (the message was queued after all) or it ended. Whichever of
    /// this and the worker's start comes first wins, so a task is either refused before any model call or runs.
    /// </summary>
    public static Task<bool> WithdrawAsync(this ITaskStore store, string taskId, string sessionId, string reason) =>
        store.FinishAsync(new TaskOutcome
        {
            TaskId = taskId,
            SessionId = sessionId,
            State = TaskState.Failed,
            Attempt = 0, // no attempt yet: every start counts one
            Error = reason,
            Failure = Unavailable,
        }, StreamEvents.Error(taskId, null, reason, Unavailable), CancellationToken.None);

    /// <summary>The broker refused the request: another try later may well go through.</summary>
    static readonly FailureDetail Unavailable = new(503, "server_error", "service_unavailable", Retryable: true);
}
