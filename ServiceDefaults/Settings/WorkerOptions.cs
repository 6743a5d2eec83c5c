using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>How much work one worker process takes on, and for how long results are kept.</summary>
public sealed class WorkerOptions
{
    /// <summary>In-flight chat messages per worker process (async I/O, so far above a thread pool's size).</summary>
    [ConfigurationKeyName("CHAT_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "CHAT_CONCURRENCY must be between {1} and {2}")]
    public int ChatConcurrency { get; set; } = 32;

    [ConfigurationKeyName("EMBEDDING_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "EMBEDDING_CONCURRENCY must be between {1} and {2}")]
    public int EmbeddingConcurrency { get; set; } = 32;

    /// <summary>How long task records and finished streams stay readable, in seconds.</summary>
    [ConfigurationKeyName("RESULT_TTL"), Range(60, 30 * 86_400, ErrorMessage = "RESULT_TTL must be between {1} and {2} seconds")]
    public int ResultTtlSeconds { get; set; } = 86_400;

    public TimeSpan ResultTtl => TimeSpan.FromSeconds(ResultTtlSeconds);
}
