using LlmStream.Providers;
using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Health;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.ServiceDefaults.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

public static class ProvidersExtensions
{
    /// <summary>
    /// The model provider's clients, the models the settings name, prompt counting, retries, embedding limits, and the
    /// cluster-wide rate limits: LLM_RPM / LLM_TPM buckets in Redis when the deployment uses it (shared by all workers),
    /// else in this process. Registers once, however many services of the process ask.
    /// </summary>
    public static IHostApplicationBuilder AddProviders(this IHostApplicationBuilder builder, Deployment deployment)
    {
        if (!builder.Properties.TryAdd(typeof(ProvidersExtensions), true))
            return builder;
        builder.Services.AddOptions<ModelOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<ModelOptions>, ModelOptionsValidator>();
        builder.Services.AddOptions<RateLimitOptions>().Bind(builder.Configuration)
            .PostConfigure<IOptions<ModelOptions>>((limits, models) => limits.ApplyDefaults(models.Value.Provider == ProviderKind.Simulated))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>();
        builder.AddValidatedSettings<RetryOptions>();
        builder.AddValidatedSettings<EmbeddingOptions>();

        builder.Services.AddSingleton<ModelClients>();
        builder.Services.AddSingleton<ModelCatalog>();
        builder.Services.AddSingleton<IModelLabels>(sp => sp.GetRequiredService<ModelCatalog>());
        builder.Services.AddSingleton<PromptTokens>();
        if (deployment.UsesRedis)
            builder.Services.AddSingleton<IRateLimiter>(sp => ActivatorUtilities.CreateInstance<RedisRateLimiter>(sp, sp.GetRequiredService<IConnectionMultiplexer>()));
        else
            builder.Services.AddSingleton<IRateLimiter, InProcessRateLimiter>();
        builder.Services.AddHealthChecks().AddCheck<ProviderHealthCheck>("provider", tags: [HealthTags.Ready]);
        return builder;
    }
}
