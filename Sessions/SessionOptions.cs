using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.Sessions;

/// <summary>How long what a task leaves behind stays readable.</summary>
public sealed class SessionOptions
{
    /// <summary>How long task records, finished streams and embedding results stay readable, in seconds.</summary>
    [ConfigurationKeyName("RESULT_TTL"), Range(1, 30 * 86_400, ErrorMessage = "RESULT_TTL must be between {1} and {2} seconds")]
    public int ResultTtlSeconds { get; set; } = 86_400;

    public TimeSpan ResultTtl => TimeSpan.FromSeconds(ResultTtlSeconds);
}
