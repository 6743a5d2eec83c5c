using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace LlmStream.Providers;

public enum ProviderKind { Simulated, OpenAi, AzureOpenAi }

/// <summary>The model provider: OpenAI, Azure OpenAI, any OpenAI-compatible server, or the simulated model.</summary>
public sealed class ModelOptions
{
    [ConfigurationKeyName("OPENAI_API_KEY")]
    public string? OpenAiApiKey { get; set; }

    /// <summary>Any OpenAI-compatible server (vLLM, Ollama, llama.cpp), e.g. http://localhost:11434/v1.</summary>
    [ConfigurationKeyName("OPENAI_BASE_URL")]
    public string? OpenAiBaseUrl { get; set; }

    [ConfigurationKeyName("AZURE_OPENAI_ENDPOINT")]
    public string? AzureEndpoint { get; set; }

    [ConfigurationKeyName("AZURE_OPENAI_API_KEY")]
    public string? AzureApiKey { get; set; }

    [ConfigurationKeyName("AZURE_OPENAI_DEPLOYMENT")]
    public string? AzureDeployment { get; set; }

    /// <summary>Azure's deployment for embeddings (the chat deployment cannot serve them); the model name when unset.</summary>
    [ConfigurationKeyName("AZURE_OPENAI_EMBEDDING_DEPLOYMENT")]
    public string? AzureEmbeddingDeployment { get; set; }

    [ConfigurationKeyName("LLM_MODEL")]
    public string LlmModel { get; set; } = "gpt-4o-mini";

    [ConfigurationKeyName("EMBEDDING_MODEL")]
    public string EmbeddingModel { get; set; } = "text-embedding-3-small";

    /// <summary>One generation's time limit, in seconds.</summary>
    [ConfigurationKeyName("LLM_TIMEOUT")]
    public int LlmTimeoutSeconds { get; set; } = 300;

    /// <summary>Pace of the simulated model, in tokens per second (0: as fast as possible).</summary>
    [ConfigurationKeyName("SIMULATED_TOKENS_PER_SECOND")]
    public int SimulatedTokensPerSecond { get; set; } = 40;

    public TimeSpan LlmTimeout => TimeSpan.FromSeconds(LlmTimeoutSeconds);

    /// <summary>The context window of a model neither <see cref="ModelContextTokens"/> nor <see cref="KnownContextTokens"/> names.</summary>
    [ConfigurationKeyName("LLM_CONTEXT_TOKENS")]
    public int ContextTokens { get; set; } = 128_000;

    /// <summary>Per model or deployment: <c>llama3=8192,gpt-4.1=1047576</c>; wins over the known windows.</summary>
    [ConfigurationKeyName("LLM_MODEL_CONTEXT_TOKENS")]
    public string? ModelContextTokens { get; set; }

    /// <summary>
    /// OpenAI's published context windows, matched by the longest prefix of the model name (gpt-4o-mini-2024-07-18 is a
    /// gpt-4o-mini). A deployment or local model named otherwise gets <see cref="ContextTokens"/>.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, int> KnownContextTokens = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["gpt-3.5-turbo"] = 16_385,
        ["gpt-4"] = 8_192,
        ["gpt-4-32k"] = 32_768,
        ["gpt-4-turbo"] = 128_000,
        ["gpt-4o"] = 128_000,
        ["gpt-4o-mini"] = 128_000,
        ["gpt-4.1"] = 1_047_576,
        ["gpt-5"] = 400_000,
        ["o1"] = 200_000,
        ["o1-mini"] = 128_000,
        ["o3"] = 200_000,
        ["o4-mini"] = 200_000,
    };

    /// <summary>The most tokens a prompt and its answer may have together on <paramref name="model"/>.</summary>
    public int ContextLimit(string model)
    {
        if (SettingLists.TryParseNumbers(ModelContextTokens, out var configured, out _) && configured.TryGetValue(model, out var set))
            return set;
        var best = "";
        var limit = ContextTokens;
        foreach (var (prefix, tokens) in KnownContextTokens)
        {
            if (prefix.Length > best.Length && model.StartsWith(prefix, StringComparison.Ordinal))
                (best, limit) = (prefix, tokens);
        }
        return limit;
    }

    /// <summary>The model names the settings mention: the defaults and those given limits of their own.</summary>
    public IEnumerable<string> ConfiguredModels() =>
        new[] { LlmModel, EmbeddingModel }
            .Concat(SettingLists.TryParseNumbers(ModelContextTokens, out var configured, out _) ? configured.Keys : []);

    public ProviderKind Provider =>
        !string.IsNullOrWhiteSpace(AzureEndpoint) ? ProviderKind.AzureOpenAi
        : !string.IsNullOrWhiteSpace(OpenAiApiKey) || !string.IsNullOrWhiteSpace(OpenAiBaseUrl) ? ProviderKind.OpenAi
        : ProviderKind.Simulated;

    /// <summary>What the provider is, for logs and health: never the key.</summary>
    public string Describe() => Provider switch
    {
        ProviderKind.AzureOpenAi => $"Azure OpenAI at {AzureEndpoint} (deployment {AzureDeployment ?? LlmModel})",
        ProviderKind.OpenAi => $"OpenAI-compatible API at {OpenAiBaseUrl ?? "https://api.openai.com/v1"}",
        _ => "SIMULATED model (no provider configured: set OPENAI_API_KEY, OPENAI_BASE_URL or AZURE_OPENAI_ENDPOINT)",
    };
}

public sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions o)
    {
        var failures = new List<string>();
        if (o.LlmTimeoutSeconds is < 1 or > 86_400)
            failures.Add($"LLM_TIMEOUT={o.LlmTimeoutSeconds} must be a number of seconds between 1 and 86400");
        if (string.IsNullOrWhiteSpace(o.LlmModel))
            failures.Add("LLM_MODEL must not be empty");
        if (string.IsNullOrWhiteSpace(o.EmbeddingModel))
            failures.Add("EMBEDDING_MODEL must not be empty");
        if (o.ContextTokens < 1)
            failures.Add("LLM_CONTEXT_TOKENS must be 1 or more");
        if (!SettingLists.TryParseNumbers(o.ModelContextTokens, out var contexts, out var contextError))
            failures.Add($"LLM_MODEL_CONTEXT_TOKENS: {contextError}");
        else if (contexts.FirstOrDefault(c => c.Value < 1) is { Key: not null } zero)
            failures.Add($"LLM_MODEL_CONTEXT_TOKENS: {zero.Key} must have 1 token or more");
        if (o.SimulatedTokensPerSecond < 0)
            failures.Add("SIMULATED_TOKENS_PER_SECOND must be 0 or more");
        if (!string.IsNullOrWhiteSpace(o.OpenAiBaseUrl) && !IsHttpUrl(o.OpenAiBaseUrl))
            failures.Add($"OPENAI_BASE_URL='{o.OpenAiBaseUrl}' is not an http(s) URL");
        if (o.Provider == ProviderKind.AzureOpenAi)
        {
            if (!IsHttpUrl(o.AzureEndpoint!))
                failures.Add($"AZURE_OPENAI_ENDPOINT='{o.AzureEndpoint}' is not an http(s) URL");
            if (string.IsNullOrWhiteSpace(o.AzureApiKey))
                failures.Add("AZURE_OPENAI_API_KEY is required when AZURE_OPENAI_ENDPOINT is set");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    static bool IsHttpUrl(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https";
}
