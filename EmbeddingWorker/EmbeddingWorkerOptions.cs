using System.ComponentModel.DataAnnotations;

namespace LlmStream.EmbeddingWorker;

public sealed class EmbeddingWorkerOptions
{
    /// <summary>Embedding batches in flight per worker process (each runs up to EMBEDDING_CHUNK_PARALLELISM requests).</summary>
    [ConfigurationKeyName("EMBEDDING_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "EMBEDDING_CONCURRENCY must be between {1} and {2}")]
    public int Concurrency { get; set; } = 8;
}
