namespace LlmStream.Contracts;

/// <summary>A chat generation was accepted by a gateway and must be run by a chat worker.</summary>
/// <remarks>
/// The gateway already created the task record and the session's stream before sending this,
/// so a consumer only ever moves an existing task forward. Consumers are idempotent on <see cref="TaskId"/>.
/// </remarks>
public sealed record ChatRequested
{
    public required string TaskId { get; init; }
    public required string SessionId { get; init; }
    public required string Message { get; init; }
    public required string Model { get; init; }
    public string? SystemPrompt { get; init; }
    public int Priority { get; init; }
    public string? UserId { get; init; }
    public DateTimeOffset AcceptedAt { get; init; }
}
