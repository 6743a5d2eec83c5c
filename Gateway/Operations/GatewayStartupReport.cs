using LlmStream.Gateway.Access;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Operations;

/// <summary>Prints where to open the product and what it runs on, labelling the simulated model.</summary>
public sealed class GatewayStartupReport(
    IOptions<GatewayOptions> gateway, IOptions<BrokerOptions> broker, IOptions<ApiKeyOptions> keys, ModelClients models,
    IHostApplicationLifetime lifetime, ILogger<GatewayStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var listen = gateway.Value.ListenHost(broker.Value.Kind == BrokerKind.InMemory);
            var host = listen is "0.0.0.0" or "+" or "*" or "::" or "[::]" or "127.0.0.1" ? "localhost" : listen;
            var url = $"http://{host}:{gateway.Value.Port}";
            var mode = broker.Value.Kind == BrokerKind.InMemory
                ? "single process: in-memory bus, chat and embedding workers in this process, " + (broker.Value.UsesRedisStore ? "streams in Redis" : "in-process stream store")
                : $"{broker.Value.Kind} broker, streams in Redis";
            logger.LogInformation("LlmStream gateway ready ({Mode}); model provider: {Provider}", mode, models.Describe());
            logger.LogInformation("Open {ChatUrl} for the chat page, {DashboardUrl} for the dashboard, {DocsUrl} for the API reference",
                url + "/", url + "/dashboard.html", url + "/docs");
            if (listen is not ("127.0.0.1" or "localhost" or "::1" or "[::1]") && string.IsNullOrWhiteSpace(keys.Value.ApiKeys) && !models.IsSimulated)
                logger.LogWarning("Listening on {Host} with no API_KEYS: anyone who reaches port {Port} can spend the model provider's key; set API_KEYS",
                    listen, gateway.Value.Port);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
