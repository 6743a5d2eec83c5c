using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.Providers;

/// <summary>The one retry layer of provider calls (the SDK's own retries are off).</summary>
public sealed class RetryOptions
{
    /// <summary>Retries of a transient provider failure (429, 5xx, network) before the task fails.</summary>
    [ConfigurationKeyName("RETRY_LIMIT"), Range(0, 20, ErrorMessage = "RETRY_LIMIT must be between {1} and {2}")]
    public int RetryLimit { get; set; } = 3;

    /// <summary>First retry interval in milliseconds; later ones grow exponentially (a provider's Retry-After wins when longer).</summary>
    [ConfigurationKeyName("RETRY_BASE_MS"), Range(10, 60_000, ErrorMessage = "RETRY_BASE_MS must be between {1} and {2}")]
    public int RetryBaseMilliseconds { get; set; } = 1000;
}
