using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.RateLimiting;

public static class RateLimitingExtensions
{
    /// <summary>LLM_RPM / LLM_TPM buckets in Redis when REDIS_URL is set (shared by all workers), else in process.</summary>
    public static IHostApplicationBuilder AddRateLimiting(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<RateLimitOptions>().Bind(builder.Configuration)
            .PostConfigure<IOptions<ModelOptions>>((limits, models) => limits.ApplyDefaults(models.Value.Provider == ProviderKind.Simulated))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>();
        builder.Services.AddSingleton<PromptTokens>();
        var broker = builder.Configuration.Settings<BrokerOptions>();
        if (broker.UsesRedisStore)
            builder.Services.AddSingleton<IRateLimiter>(sp => ActivatorUtilities.CreateInstance<RedisRateLimiter>(sp, sp.GetRequiredService<IConnectionMultiplexer>()));
        else
            builder.Services.AddSingleton<IRateLimiter, InProcessRateLimiter>();
        return builder;
    }
}
