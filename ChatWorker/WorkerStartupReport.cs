using LlmStream.ServiceDefaults.Models;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>Says at start what this worker runs against, labelling the simulated model as such.</summary>
public sealed class WorkerStartupReport(IOptions<BrokerOptions> broker, IOptions<WorkerOptions> worker, ModelClients models, ILogger<WorkerStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Chat worker on {Broker}, {Concurrency} messages in flight per queue, model provider: {Provider}",
            broker.Value.Kind, worker.Value.ChatConcurrency, models.Describe());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A worker in its own process cannot share an in-memory bus with the gateway.</summary>
public sealed class SeparateWorkerBrokerValidator : IValidateOptions<BrokerOptions>
{
    public ValidateOptionsResult Validate(string? name, BrokerOptions options)
    {
        // An invalid BROKER is reported by BrokerOptionsValidator.
        return options.TryGetKind(out var kind) && kind == BrokerKind.InMemory
            ? ValidateOptionsResult.Fail("BROKER=inmemory runs the chat worker inside the gateway (make run); a separate ChatWorker needs BROKER=rabbitmq or redis")
            : ValidateOptionsResult.Success;
    }
}
