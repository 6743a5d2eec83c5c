using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace LlmStream.Providers.RateLimiting;

/// <summary>Cluster-wide limits of the model provider, shared by every worker (Redis) or the one process.</summary>
public sealed class RateLimitOptions
{
    public const int DefaultRequestsPerMinute = 500;
    public const int DefaultTokensPerMinute = 100_000;

    /// <summary>LLM_RPM as set; unset, <see cref="RequestsPerMinute"/> follows the provider (<see cref="ApplyDefaults"/>).</summary>
    [ConfigurationKeyName("LLM_RPM")]
    public int? RequestsPerMinuteSetting { get; set; }

    /// <summary>LLM_TPM as set; unset, <see cref="TokensPerMinute"/> follows the provider.</summary>
    [ConfigurationKeyName("LLM_TPM")]
    public int? TokensPerMinuteSetting { get; set; }

    /// <summary>Requests per minute for all models together; 0: no limit.</summary>
    public int RequestsPerMinute { get; set; } = DefaultRequestsPerMinute;

    /// <summary>Tokens (prompt + completion) per minute for all models together; 0: no limit.</summary>
    public int TokensPerMinute { get; set; } = DefaultTokensPerMinute;

    /// <summary>
    /// The limits protect a provider: unset, they are 500 requests and 100,000 tokens a minute with a real one, and off
    /// with the simulated model, which has no limits to protect (a demo must not queue behind a bucket).
    /// </summary>
    public void ApplyDefaults(bool simulated)
    {
        RequestsPerMinute = RequestsPerMinuteSetting ?? (simulated ? 0 : DefaultRequestsPerMinute);
        TokensPerMinute = TokensPerMinuteSetting ?? (simulated ? 0 : DefaultTokensPerMinute);
    }

    /// <summary>Per model or deployment: <c>gpt-4o-mini=500/200000,gpt-4o=100/30000</c> (requests/tokens per minute; 0 = no limit).</summary>
    [ConfigurationKeyName("LLM_MODEL_LIMITS")]
    public string? ModelLimits { get; set; }

    /// <summary>How many seconds of the rate may be used at once after a quiet period.</summary>
    [ConfigurationKeyName("RATE_LIMIT_BURST_SECONDS")]
    public double BurstSeconds { get; set; } = 1;

    /// <summary>Completion tokens reserved before a call (the prompt is counted exactly); settled to the reported usage after.</summary>
    [ConfigurationKeyName("LLM_EXPECTED_COMPLETION_TOKENS")]
    public int ExpectedCompletionTokens { get; set; } = 256;

    public IReadOnlyDictionary<string, (int Rpm, int Tpm)> ParsedModelLimits() =>
        TryParseModelLimits(ModelLimits, out var limits, out _) ? limits : new Dictionary<string, (int, int)>();

    public static bool TryParseModelLimits(string? text, out Dictionary<string, (int Rpm, int Tpm)> limits, out string error)
    {
        limits = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        error = "";
        if (string.IsNullOrWhiteSpace(text))
            return true;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.LastIndexOf('=');
            var numbers = eq > 0 ? part[(eq + 1)..].Split('/') : [];
            if (eq <= 0 || numbers.Length != 2
                || !int.TryParse(numbers[0], NumberStyles.None, CultureInfo.InvariantCulture, out var rpm)
                || !int.TryParse(numbers[1], NumberStyles.None, CultureInfo.InvariantCulture, out var tpm))
            {
                error = $"'{part}' is not model=requests/tokens (e.g. gpt-4o-mini=500/200000)";
                return false;
            }
            limits[part[..eq].Trim()] = (rpm, tpm);
        }
        return true;
    }
}

public sealed class RateLimitOptionsValidator : IValidateOptions<RateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitOptions o)
    {
        var failures = new List<string>();
        if (o.RequestsPerMinuteSetting < 0) failures.Add("LLM_RPM must be 0 (no limit) or more");
        if (o.TokensPerMinuteSetting < 0) failures.Add("LLM_TPM must be 0 (no limit) or more");
        if (o.BurstSeconds is <= 0 or > 60) failures.Add("RATE_LIMIT_BURST_SECONDS must be more than 0 and at most 60");
        if (o.ExpectedCompletionTokens < 0) failures.Add("LLM_EXPECTED_COMPLETION_TOKENS must be 0 or more");
        if (!RateLimitOptions.TryParseModelLimits(o.ModelLimits, out _, out var error))
            failures.Add($"LLM_MODEL_LIMITS: {error}");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
