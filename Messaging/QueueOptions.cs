using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.Messaging;

/// <summary>How workers share their queues and tell the cluster they are alive.</summary>
public sealed class QueueOptions
{
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
    /// Optional file a worker touches at every heartbeat while it is healthy (bus connected, Redis reachable): a
    /// container health check of a process that serves no HTTP tests the file's age.
    /// </summary>
    [ConfigurationKeyName("HEALTH_FILE")]
    public string? HealthFile { get; set; }
}
