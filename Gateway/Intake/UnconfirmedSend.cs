using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Redis;

namespace LlmStream.Gateway.Intake;

/// <summary>
/// What a failed send means for the task it carried. A send that timed out may still have reached the queue, so the
/// refusal (503) holds only if the task can be withdrawn before any worker starts it: one atomic store step against
/// the worker's own start. A task a worker has already started was queued after all, and the request is accepted.
/// </summary>
public static class UnconfirmedSend
{
    /// <param name="withdraw">Fails the task unless a worker has started it; false when one has (or it ended).</param>
    /// <param name="stateNow">The task's state as stored, or null when its record is gone.</param>
    /// <returns>True when the request is refused; false when a worker has it and it counts as accepted.</returns>
    public static async Task<bool> RefusedAsync(BrokerUnavailableException failure, string taskId, ILogger logger,
        Func<Task<bool>> withdraw, Func<Task<string?>> stateNow)
    {
        try
        {
            if (await withdraw())
            {
                logger.LogWarning("Task {TaskId} not queued: {Reason}", taskId, failure.Message);
                return true;
            }
            if (await stateNow() is not { } state)
            {
                logger.LogError("Broker unavailable and task {TaskId} gone from the store; a worker will find nothing to run: {Reason}", taskId, failure.Message);
                return true;
            }
            logger.LogWarning("The broker did not confirm task {TaskId}, but the task is {State} already: a worker got it; accepted ({Reason})", taskId, state, failure.Message);
            return false;
        }
        catch (Exception redis) when (redis.IsRedisFailure())
        {
            // Broker and store failed together: the refusal cannot be recorded, so a message that did get through
            // would still run. Said here, where an operator looks.
            logger.LogError("Broker and task store unavailable; task {TaskId} may still be queued and run: {Reason}", taskId, redis.Message);
            return true;
        }
    }
}
