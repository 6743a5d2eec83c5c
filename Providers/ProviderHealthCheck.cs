using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace LlmStream.Providers;

/// <summary>Which model provider is configured (settings are validated at start, so it is always usable or simulated).</summary>
public sealed class ProviderHealthCheck(IOptions<ModelOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(HealthCheckResult.Healthy(options.Value.Describe(), new Dictionary<string, object>
        {
            ["provider"] = options.Value.Provider.ToString().ToLowerInvariant(),
            ["model"] = options.Value.LlmModel,
        }));
}
