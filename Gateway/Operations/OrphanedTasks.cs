using LlmStream.Messaging;
using LlmStream.Messaging.Workers;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Operations;

/// <summary>
/// Ends the tasks no worker will finish: started by a worker that has been gone for ORPHAN_GRACE_SECONDS (no heartbeat)
/// while no redelivery started a new attempt, which happens when the broker lost the message too. Each gets one error
/// event. The failure is conditional on the same attempt and worker still being on record, in one store step, so a
/// redelivery that starts the task first wins, and one that comes later finds the task ended and runs nothing.
/// </summary>
public sealed class OrphanedTasks(
    ITaskStore store, IWorkerRegistry workers, IOptions<GatewayOptions> gateway, IOptions<QueueOptions> queues, TimeProvider clock, ILogger<OrphanedTasks> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // In the single-process default the workers die with the store: nothing can be orphaned.
        if (store is not RedisTaskStore redis)
            return;
        var interval = TimeSpan.FromSeconds(Math.Max(1, queues.Value.HeartbeatSeconds));
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(interval, clock, stoppingToken);
                try
                {
                    await SweepAsync(redis);
                }
                catch (Exception e) when (e.IsRedisFailure())
                {
                    // Redis is away (the intake says so once): the next pass tries again; a background check never stops the gateway.
                    logger.LogDebug("Orphan check skipped: {Reason}", e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass; the number of tasks it ended.</summary>
    public async Task<int> SweepAsync(RedisTaskStore redis)
    {
        var now = clock.GetUtcNow();
        var grace = gateway.Value.OrphanGrace;
        var candidates = await redis.StartedBeforeAsync(now - grace, 100);
        if (candidates.Count == 0)
            return 0;
        var alive = (await workers.AliveAsync(now)).Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
        var ended = 0;
        foreach (var taskId in candidates)
        {
            var task = await store.GetAsync(taskId, CancellationToken.None);
            if (task is not { State: TaskState.Started })
            {
                await redis.ForgetRunningAsync(taskId);
                continue;
            }
            if (task.Worker is { } worker && alive.Contains(worker))
                continue;
            // Gone since its last heartbeat, or (when it left cleanly or is forgotten) at least since the attempt started.
            var gone = (task.Worker is null ? null : await workers.LastSeenAsync(task.Worker)) ?? task.StartedAt ?? task.CreatedAt;
            if (now - gone < grace)
                continue;
            var reason = $"the worker running this task stopped, and no other worker received its message within {grace.TotalSeconds:0} s " +
                         "(ORPHAN_GRACE_SECONDS): it was lost; send the request again";
            var failure = new FailureDetail(502, "server_error", "worker_lost", null, reason, Retryable: true);
            if (await store.FinishAsync(new TaskOutcome
                {
                    TaskId = task.TaskId,
                    SessionId = task.SessionId,
                    State = TaskState.Failed,
                    Attempt = task.Attempt,
                    Worker = task.Worker ?? "",
                    Error = reason,
                    Failure = failure,
                }, StreamEvents.Error(task.TaskId, task.Attempt, reason, failure), CancellationToken.None))
            {
                ended++;
                logger.LogWarning("Task {TaskId} failed: its worker {Worker} has been gone since {Gone:O} and no redelivery started it again",
                    task.TaskId, task.Worker ?? "(unknown)", gone);
            }
        }
        return ended;
    }
}
