namespace LlmStream.Contracts;

/// <summary>
/// What a /v1/responses request asked for, kept in its task's record: the gateway shows it back in the response object,
/// and the worker's memory sends its <see cref="Input"/> as the turn's first half when a later response continues it.
/// </summary>
public sealed record StoredResponse
{
    /// <summary>The request's input items as conversation turns (instructions apart: they do not carry over).</summary>
    public IReadOnlyList<ChatTurn> Input { get; init; } = [];

    public string? Instructions { get; init; }

    /// <summary>The task of previous_response_id, when this response continues one.</summary>
    public string? PreviousTaskId { get; init; }

    public bool Background { get; init; }

    /// <summary>False: the response is not kept to be read back (GET answers 404 and it cannot be continued).</summary>
    public bool Store { get; init; } = true;

    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>The tools as the client sent them (a JSON array), shown back as they came.</summary>
    public string? Tools { get; init; }

    /// <summary>The tool_choice as the client sent it (JSON), shown back as it came.</summary>
    public string? ToolChoice { get; init; }

    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? MaxOutputTokens { get; init; }
    public bool? ParallelToolCalls { get; init; }
    public string? User { get; init; }
}
