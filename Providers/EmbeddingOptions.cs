using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.Providers;

/// <summary>Limits of an embedding batch at the gateway, and how a worker cuts it into provider requests.</summary>
public sealed class EmbeddingOptions
{
    /// <summary>Texts in one POST /embeddings (the gateway answers 400 above it).</summary>
    [ConfigurationKeyName("EMBEDDING_MAX_TEXTS"), Range(1, 1_000_000, ErrorMessage = "EMBEDDING_MAX_TEXTS must be between {1} and {2}")]
    public int MaxTexts { get; set; } = 10_000;

    /// <summary>Characters of all texts of one batch together (400 above it).</summary>
    [ConfigurationKeyName("EMBEDDING_MAX_TOTAL_CHARS"), Range(1, 100_000_000, ErrorMessage = "EMBEDDING_MAX_TOTAL_CHARS must be between {1} and {2}")]
    public int MaxTotalChars { get; set; } = 2_000_000;

    /// <summary>Tokens of one text: the model's input limit (8191 for OpenAI's embedding models); 400 naming the text above it.</summary>
    [ConfigurationKeyName("EMBEDDING_MAX_TEXT_TOKENS"), Range(1, 1_000_000, ErrorMessage = "EMBEDDING_MAX_TEXT_TOKENS must be between {1} and {2}")]
    public int MaxTextTokens { get; set; } = 8191;

    /// <summary>Texts per provider request (OpenAI accepts up to 2048).</summary>
    [ConfigurationKeyName("EMBEDDING_CHUNK_TEXTS"), Range(1, 100_000, ErrorMessage = "EMBEDDING_CHUNK_TEXTS must be between {1} and {2}")]
    public int ChunkTexts { get; set; } = 2048;

    /// <summary>Tokens per provider request (OpenAI accepts up to 300,000).</summary>
    [ConfigurationKeyName("EMBEDDING_CHUNK_TOKENS"), Range(1, 10_000_000, ErrorMessage = "EMBEDDING_CHUNK_TOKENS must be between {1} and {2}")]
    public int ChunkTokens { get; set; } = 300_000;

    /// <summary>Provider requests of one batch in flight at once.</summary>
    [ConfigurationKeyName("EMBEDDING_CHUNK_PARALLELISM"), Range(1, 64, ErrorMessage = "EMBEDDING_CHUNK_PARALLELISM must be between {1} and {2}")]
    public int ChunkParallelism { get; set; } = 4;

    /// <summary>
    /// The largest body POST /embeddings reads: enough for MaxTotalChars characters however they are escaped
    /// (\uXXXX is 6 bytes per UTF-16 unit) plus the quotes and commas of MaxTexts strings, so the character
    /// limit, not the byte limit, is what a client meets.
    /// </summary>
    public int MaxRequestBytes => (int)Math.Min(int.MaxValue, 6L * MaxTotalChars + 4L * MaxTexts + 64 * 1024);
}
