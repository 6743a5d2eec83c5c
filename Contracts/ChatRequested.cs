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

    /// <summary>The name of the API key the request came with, when keys are configured.</summary>
    public string? ApiKeyName { get; init; }

    public DateTimeOffset AcceptedAt { get; init; }

    /// <summary>
    /// The prompt's tokens, counted once by the gateway that accepted it (the rate limit reserves them). Absent from a
    /// gateway older than the count: the worker counts then.
    /// </summary>
    public int? PromptTokens { get; init; }

    /// <summary>
    /// Whether the worker sends the session's earlier turns before <see cref="Message"/> (POST /chat's <c>history</c>;
    /// absent: yes). Never with <see cref="Conversation"/>, which is whole already.
    /// </summary>
    public bool? History { get; init; }

    /// <summary>
    /// The whole conversation (OpenAI-compatible requests). When set, it replaces Message; a SystemPrompt (a response's
    /// instructions) goes before it, and with <see cref="PreviousTaskId"/> the earlier turns go between the two.
    /// </summary>
    public IReadOnlyList<ChatTurn>? Conversation { get; init; }

    /// <summary>
    /// The task this one continues (/v1/responses' previous_response_id): the worker sends the turns of that task and of
    /// those it continued, from the session's memory, before <see cref="Conversation"/>.
    /// </summary>
    public string? PreviousTaskId { get; init; }

    /// <summary>
    /// False when a new attempt must not start once an earlier one streamed part of an answer (/v1/responses, whose
    /// stream may be read later by anyone): the task fails instead, as a /v1 chat stream ends it. Absent: retry.
    /// </summary>
    public bool? RetryAfterOutput { get; init; }

    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? MaxTokens { get; init; }
    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>Functions the model may call (OpenAI-compatible requests); the caller runs them.</summary>
    public IReadOnlyList<ToolDefinition>? Tools { get; init; }

    /// <summary>auto, none, required, or the name of the one function to call.</summary>
    public string? ToolChoice { get; init; }

    /// <summary>OpenAI's sampling parameters beyond temperature and top_p, passed to the provider as given.</summary>
    public float? FrequencyPenalty { get; init; }
    public float? PresencePenalty { get; init; }
    public long? Seed { get; init; }

    /// <summary>Whether the model may call several tools in one turn (OpenAI's parallel_tool_calls).</summary>
    public bool? ParallelToolCalls { get; init; }

    /// <summary>OpenAI's response_format object as the client sent it (text, json_object or json_schema), checked by the gateway.</summary>
    public string? ResponseFormat { get; init; }

    /// <summary>OpenAI's reasoning_effort for reasoning models (minimal, low, medium, high...), passed on as given.</summary>
    public string? ReasoningEffort { get; init; }

    /// <summary>OpenAI's store and metadata: whether the provider keeps the completion, and the tags it files it under.</summary>
    public bool? Store { get; init; }
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>OpenAI's user: the end user the client names to the provider (for its abuse monitoring), sent only when the client sent it.</summary>
    public string? EndUserId { get; init; }
}

/// <summary>One message of a conversation: role (system, user, assistant, tool) and its text.</summary>
public sealed record ChatTurn(string Role, string Content)
{
    /// <summary>Calls an assistant message made.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>For a tool message: the call it answers.</summary>
    public string? ToolCallId { get; init; }
}

/// <summary>A function call the model asked for; <see cref="Arguments"/> is the JSON text of its arguments.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>A function offered to the model; <see cref="Parameters"/> is its JSON schema.</summary>
public sealed record ToolDefinition(string Name, string? Description, string Parameters);
