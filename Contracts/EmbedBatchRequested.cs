namespace LlmStream.Contracts;

/// <summary>A batch of texts must be embedded by an embedding worker.</summary>
public sealed record EmbedBatchRequested
{
    public required string TaskId { get; init; }
    public required IReadOnlyList<string> Texts { get; init; }
    public required string Model { get; init; }
    public int Priority { get; init; }
    public DateTimeOffset AcceptedAt { get; init; }
}
