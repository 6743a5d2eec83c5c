using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Tasks;
using StackExchange.Redis;

namespace LlmStream.Gateway;

public enum IntakeOutcome { Accepted, SessionBusy, StoreUnavailable, BrokerUnavailable }

/// <summary>
/// Accepts a chat for every API (/chat and /v1): the task record and queued event first, then the message
/// on the queue its priority selects. From the first write on, the request is either queued or visibly failed.
/// </summary>
public sealed class ChatIntake(ITaskStore store, IWorkDispatcher dispatcher, ILogger<ChatIntake> logger)
{
    public const string BrokerDown = "the message broker is unavailable; the request was not queued";
    public const string StoreDown = "the task store (Redis) is unavailable; nothing was queued";

    public async Task<IntakeOutcome> SubmitAsync(ChatRequested request)
    {
        var queue = WorkQueues.Chat.QueueFor(request.Priority);
        var task = new TaskRecord
        {
            TaskId = request.TaskId,
            SessionId = request.SessionId,
            State = TaskState.Queued,
            Model = request.Model,
            Priority = request.Priority,
            UserId = request.UserId,
            CreatedAt = request.AcceptedAt,
        };
        try
        {
            var created = await store.CreateAsync(task, StreamEvents.Queued(task.TaskId, task.Model, task.Priority, queue), CancellationToken.None);
            if (created != CreateResult.Created)
                return IntakeOutcome.SessionBusy;
        }
        catch (RedisException e)
        {
            logger.LogError(e, "Task store unavailable; chat not accepted");
            return IntakeOutcome.StoreUnavailable;
        }

        try
        {
            await dispatcher.DispatchAsync(request, WorkQueues.Chat, request.Priority, CancellationToken.None);
        }
        catch (BrokerUnavailableException e)
        {
            logger.LogError(e, "Broker unavailable; task {TaskId} not queued", task.TaskId);
            await store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = task.SessionId, State = TaskState.Failed, Error = BrokerDown },
                StreamEvents.Error(task.TaskId, null, BrokerDown), CancellationToken.None);
            return IntakeOutcome.BrokerUnavailable;
        }

        logger.LogInformation("Queued task {TaskId} for session {SessionId} on {Queue}", task.TaskId, task.SessionId, queue);
        return IntakeOutcome.Accepted;
    }
}
