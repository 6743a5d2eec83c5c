using LlmStream.Providers;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>Says at start what this worker runs against, labelling the simulated model as such.</summary>
public sealed class WorkerStartupReport(IOptions<BrokerOptions> broker, IOptions<ChatWorkerOptions> worker, ModelClients models, ILogger<WorkerStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Chat worker on {Broker}, {Concurrency} messages in flight per queue, model provider: {Provider}",
            broker.Value.Kind, worker.Value.Concurrency, models.Describe());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
