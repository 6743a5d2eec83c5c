namespace LlmStream.Contracts;

/// <summary>A batch of texts must be embedded by an embedding worker.</summary>
/// <remarks>
/// The gateway created the task record before sending this. Consumers are idempotent on <see cref="TaskId"/>:
/// a redelivered batch runs only the chunks that are not stored yet.
/// </remarks>
public sealed record EmbedBatchRequested
{
    public required string TaskId { get; init; }
    public required IReadOnlyList<string> Texts { get; init; }
    public required string Model { get; init; }
    public int Priority { get; init; }

    /// <summary>Vector length asked of the model (text-embedding-3 models can shorten theirs); the model's own when null.</summary>
    public int? Dimensions { get; init; }

    /// <summary>Each text's tokens, counted once by the gateway (absent from an older gateway: the worker counts then).</summary>
    public IReadOnlyList<int>? TextTokens { get; init; }

    /// <summary>The name of the API key the request came with, when keys are configured.</summary>
    public string? ApiKeyName { get; init; }

    public DateTimeOffset AcceptedAt { get; init; }
}
