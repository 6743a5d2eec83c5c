using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>How much work one worker process takes on, and for how long results are kept.</summary>
public sealed class WorkerOptions
{
    /// <summary>In-flight chat messages per worker process (async I/O, so far above a thread pool's size).</summary>
    [ConfigurationKeyName("CHAT_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "CHAT_CONCURRENCY must be between {1} and {2}")]
    public int ChatConcurrency { get; set; } = 32;

    /// <summary>Embedding batches in flight per worker process (each runs up to EMBEDDING_CHUNK_PARALLELISM requests).</summary>
    [ConfigurationKeyName("EMBEDDING_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "EMBEDDING_CONCURRENCY must be between {1} and {2}")]
    public int EmbeddingConcurrency { get; set; } = 8;

    /// <summary>How long task records and finished streams stay readable, in seconds.</summary>
    [ConfigurationKeyName("RESULT_TTL"), Range(1, 30 * 86_400, ErrorMessage = "RESULT_TTL must be between {1} and {2} seconds")]
    public int ResultTtlSeconds { get; set; } = 86_400;

    public TimeSpan ResultTtl => TimeSpan.FromSeconds(ResultTtlSeconds);

    /// <summary>Retries of a transient provider failure (429, 5xx, network) before the task fails.</summary>
    [ConfigurationKeyName("RETRY_LIMIT"), Range(0, 20, ErrorMessage = "RETRY_LIMIT must be between {1} and {2}")]
    public int RetryLimit { get; set; } = 3;

    /// <summary>First retry interval in milliseconds; later ones grow exponentially (a provider's Retry-After wins when longer).</summary>
    [ConfigurationKeyName("RETRY_BASE_MS"), Range(10, 60_000, ErrorMessage = "RETRY_BASE_MS must be between {1} and {2}")]
    public int RetryBaseMilliseconds { get; set; } = 1000;

    /// <summary>Every Nth start goes to the longest-waiting message whatever its queue, so low priority work is never starved.</summary>
    [ConfigurationKeyName("PRIORITY_FAIRNESS"), Range(2, 1000, ErrorMessage = "PRIORITY_FAIRNESS must be between {1} and {2}")]
    public int PriorityFairness { get; set; } = 10;

    /// <summary>BROKER=redis: a message pending this long on a silent worker is taken over by another.</summary>
    [ConfigurationKeyName("REDIS_CLAIM_IDLE_SECONDS"), Range(1, 3600, ErrorMessage = "REDIS_CLAIM_IDLE_SECONDS must be between {1} and {2}")]
    public int RedisClaimIdleSeconds { get; set; } = 30;

    /// <summary>BROKER=redis: deliveries of one message (worker crashes included) before it goes to the dead letters.</summary>
    [ConfigurationKeyName("MAX_DELIVERIES"), Range(1, 100, ErrorMessage = "MAX_DELIVERIES must be between {1} and {2}")]
    public int MaxDeliveries { get; set; } = 5;

    /// <summary>Seconds between a worker's heartbeats (GET /stats lists it; three missed ones and it counts as gone).</summary>
    [ConfigurationKeyName("HEARTBEAT_SECONDS"), Range(1, 60, ErrorMessage = "HEARTBEAT_SECONDS must be between {1} and {2}")]
    public int HeartbeatSeconds { get; set; } = 5;

    /// <summary>
    /// A task whose worker has been gone this long, with no new attempt started elsewhere, ends failed: its message was
    /// lost with the worker (e.g. a broker node and the worker failed together). Longer than any redelivery takes:
    /// RabbitMQ gives a vanished worker's messages back after its 60 s heartbeat, Redis after REDIS_CLAIM_IDLE_SECONDS.
    /// </summary>
    [ConfigurationKeyName("ORPHAN_GRACE_SECONDS"), Range(3, 86_400, ErrorMessage = "ORPHAN_GRACE_SECONDS must be between {1} and {2}")]
    public int OrphanGraceSeconds { get; set; } = 300;

    public TimeSpan OrphanGrace => TimeSpan.FromSeconds(OrphanGraceSeconds);

    /// <summary>
    /// Optional file a worker touches at every heartbeat while it is healthy (bus connected, Redis reachable): a
    /// container health check of a process that serves no HTTP tests the file's age.
    /// </summary>
    [ConfigurationKeyName("HEALTH_FILE")]
    public string? HealthFile { get; set; }
}
