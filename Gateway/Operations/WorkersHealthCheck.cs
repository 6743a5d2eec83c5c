using LlmStream.Messaging;
using LlmStream.Messaging.Workers;
using LlmStream.ServiceDefaults.Redis;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace LlmStream.Gateway.Operations;

/// <summary>
/// Workers alive by their heartbeats: none for chat is unhealthy (accepted chats would wait forever), none for
/// embeddings is degraded (chat still works). Not part of readiness: a gateway keeps accepting work while
/// workers restart, which is what the queue is for.
/// </summary>
public sealed class WorkersHealthCheck(IWorkerRegistry registry, TimeProvider clock) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<WorkerBeat> alive;
        try
        {
            alive = await registry.AliveAsync(clock.GetUtcNow());
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            return HealthCheckResult.Unhealthy($"worker heartbeats cannot be read: {e.Message}");
        }

        int Slots(string work) => alive.SelectMany(w => w.Work).Where(l => l.Work == work).Sum(l => l.Concurrency);
        int Processes(string work) => alive.Count(w => w.Work.Any(l => l.Work == work));
        var (chat, embeddings) = (WorkQueues.Chat.Work, WorkQueues.Embeddings.Work);
        var data = new Dictionary<string, object>
        {
            ["chat_workers"] = Processes(chat),
            ["chat_slots"] = Slots(chat),
            ["embedding_workers"] = Processes(embeddings),
            ["embedding_slots"] = Slots(embeddings),
        };
        var summary = $"{Processes(chat)} chat and {Processes(embeddings)} embedding worker processes alive";
        if (Processes(chat) == 0)
            return HealthCheckResult.Unhealthy($"no chat worker has sent a heartbeat lately: {summary}", data: data);
        if (Processes(embeddings) == 0)
            return HealthCheckResult.Degraded($"no embedding worker has sent a heartbeat lately: {summary}", data: data);
        return HealthCheckResult.Healthy(summary, data);
    }
}
