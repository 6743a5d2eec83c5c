using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.Sessions;

/// <summary>How long what a task leaves behind stays readable, and how sure its milestones are of surviving a Redis failover.</summary>
public sealed class SessionOptions
{
    /// <summary>How long task records, finished streams and embedding results stay readable, in seconds.</summary>
    [ConfigurationKeyName("RESULT_TTL"), Range(1, 30 * 86_400, ErrorMessage = "RESULT_TTL must be between {1} and {2} seconds")]
    public int ResultTtlSeconds { get; set; } = 86_400;

    public TimeSpan ResultTtl => TimeSpan.FromSeconds(ResultTtlSeconds);

    /// <summary>
    /// The single-process default (no Redis) holds at most this many finished sessions, their streams and task records:
    /// past it the oldest finished go first, before RESULT_TTL, so that memory under sustained load stays bounded.
    /// </summary>
    [ConfigurationKeyName("MAX_FINISHED_STREAMS"), Range(1, 10_000_000, ErrorMessage = "MAX_FINISHED_STREAMS must be between {1} and {2}")]
    public int MaxFinishedStreams { get; set; } = 10_000;

    /// <summary>
    /// With Redis: once a task ends, its attempt's token events are kept in chunks of up to 64 (one entry each, with the
    /// task id once) instead of one entry per token; reading and resuming see the same events and ids.
    /// </summary>
    [ConfigurationKeyName("COMPACT_FINISHED_STREAMS")]
    public bool CompactFinishedStreams { get; set; } = true;

    /// <summary>
    /// Replicas that must have a task's creation (before the 202), the start of each attempt and its end before the
    /// gateway or worker goes on (Redis WAIT): Redis replicates asynchronously, and a failover loses what no replica had.
    /// 0: no waiting.
    /// </summary>
    [ConfigurationKeyName("REDIS_WAIT_REPLICAS"), Range(0, 10, ErrorMessage = "REDIS_WAIT_REPLICAS must be between {1} and {2}")]
    public int WaitReplicas { get; set; }

    /// <summary>How long one such wait may take, in milliseconds; past it the work goes on, and a warning is logged.</summary>
    [ConfigurationKeyName("REDIS_WAIT_TIMEOUT_MS"), Range(1, 60_000, ErrorMessage = "REDIS_WAIT_TIMEOUT_MS must be between {1} and {2}")]
    public int WaitTimeoutMilliseconds { get; set; } = 1_000;
}
