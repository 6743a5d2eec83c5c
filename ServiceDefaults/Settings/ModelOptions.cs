using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Settings;

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
