using LlmStream.Sessions.Streams;

namespace LlmStream.Sessions.Embeddings;

public enum EmbeddingState { Queued, Running, Completed, Failed, Cancelled }

public static class EmbeddingStates
{
    public static string ToWire(this EmbeddingState state) => state switch
    {
        EmbeddingState.Queued => "queued",
        EmbeddingState.Running => "running",
        EmbeddingState.Completed => "completed",
        EmbeddingState.Cancelled => "cancelled",
        _ => "failed",
    };

    public static EmbeddingState FromWire(string value) => value switch
    {
        "queued" => EmbeddingState.Queued,
        "running" => EmbeddingState.Running,
        "completed" => EmbeddingState.Completed,
        "failed" => EmbeddingState.Failed,
        "cancelled" => EmbeddingState.Cancelled,
        _ => throw new FormatException($"unknown embedding task state '{value}'"),
    };

    public static bool IsTerminal(this EmbeddingState state) => state is EmbeddingState.Completed or EmbeddingState.Failed or EmbeddingState.Cancelled;
}

/// <summary>An embedding batch: its state, its progress in chunks, and (once completed) what its vectors are.</summary>
public sealed record EmbeddingTask
{
    public required string TaskId { get; init; }
    public required string Model { get; init; }
    public required int Texts { get; init; }
    public required EmbeddingState State { get; init; }
    public int Priority { get; init; }
    public int? RequestedDimensions { get; init; }
    public string? ApiKeyName { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public int Attempt { get; init; }

    /// <summary>0 until a worker has planned the batch.</summary>
    public int ChunksTotal { get; init; }
    public int ChunksDone { get; init; }

    /// <summary>Vector length, known once the first chunk is stored.</summary>
    public int? Dimensions { get; init; }
    public int PromptTokens { get; init; }
    public string? Error { get; init; }

    /// <summary>For a failed batch: how the failure reads to an OpenAI client.</summary>
    public FailureDetail? Failure { get; init; }
}

/// <summary>The vectors of one chunk: texts <see cref="First"/> to First + Count − 1 of the batch, row after row.</summary>
public sealed record EmbeddingChunk(int First, int Count, int Dimensions, float[] Values, int PromptTokens)
{
    public ReadOnlySpan<float> Vector(int row) => Values.AsSpan(row * Dimensions, Dimensions);
}
