using System.ComponentModel.DataAnnotations;

namespace LlmStream.ChatWorker;

public sealed class ChatWorkerOptions
{
    /// <summary>In-flight chat messages per worker process (async I/O, so far above a thread pool's size).</summary>
    [ConfigurationKeyName("CHAT_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "CHAT_CONCURRENCY must be between {1} and {2}")]
    public int Concurrency { get; set; } = 32;
}
