using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Telemetry;
using Microsoft.Extensions.Options;

namespace LlmStream.Providers;

/// <summary>
/// The models the settings name (LLM_MODEL, EMBEDDING_MODEL, and those of LLM_MODEL_LIMITS and LLM_MODEL_CONTEXT_TOKENS):
/// what GET /v1/models lists, what the simulated model serves, and the only values a metric's model label takes.
/// </summary>
public sealed class ModelCatalog : IModelLabels
{
    readonly HashSet<string> _names;

    public ModelCatalog(IOptions<ModelOptions> models, IOptions<RateLimitOptions> limits)
    {
        Names = [.. models.Value.ConfiguredModels().Concat(limits.Value.ParsedModelLimits().Keys).Distinct(StringComparer.Ordinal)];
        _names = new HashSet<string>(Names, StringComparer.Ordinal);
        IsSimulated = models.Value.Provider == ProviderKind.Simulated;
    }

    public IReadOnlyList<string> Names { get; }

    public bool IsSimulated { get; }

    public bool Lists(string model) => _names.Contains(model);

    /// <summary>
    /// With the simulated model, a name it does not list does not exist, as OpenAI answers for a model it does not serve.
    /// A real provider decides for itself (its 404 reaches the client).
    /// </summary>
    public bool Serves(string model) => !IsSimulated || Lists(model);

    /// <summary>Clients choose model names: a label takes the names the settings give, and "other" for the rest.</summary>
    public string Label(string model) => Lists(model) ? model : LlmStreamMetrics.OtherModel;
}
