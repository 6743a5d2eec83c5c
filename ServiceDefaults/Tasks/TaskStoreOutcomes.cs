namespace LlmStream.ServiceDefaults.Tasks;

public static class TaskStoreOutcomes
{
    /// <summary>
    /// Ends a task as failed with a reason a person can read, and its error event, in one store call.
    /// False when the task had ended already (or, with <paramref name="attempt"/>, another attempt owns it).
    /// </summary>
    public static Task<bool> FailAsync(this ITaskStore store, string taskId, string sessionId, string reason, int? attempt = null) =>
        store.FinishAsync(new TaskOutcome
        {
            TaskId = taskId,
            SessionId = sessionId,
            State = TaskState.Failed,
            Attempt = attempt,
            Error = reason,
        }, StreamEvents.Error(taskId, attempt, reason), CancellationToken.None);
}
