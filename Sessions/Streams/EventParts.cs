
namespace LlmStream.Sessions.Streams;

/// <summary>Token counts of one generation, as the provider reported them.</summary>
public sealed record TokenUsage(int PromptTokens, int CompletionTokens, int TotalTokens);

/// <summary>
/// How a failure reads to an OpenAI client: the HTTP status to answer with, OpenAI's error type, code and parameter
/// (a provider's own 4xx passes through as it came), the provider's message when it gave one, and whether another try
/// could succeed (a client is told not to retry one that cannot: <c>x-should-retry: false</c>).
/// </summary>
public sealed record FailureDetail(int Status, string Type, string? Code = null, string? Param = null, string? Message = null, bool Retryable = false)
{
    /// <summary>The worker failed in a way no retry of the same request mends.</summary>
    public static readonly FailureDetail Internal = new(500, "server_error");

    /// <summary>An attempt failed after part of its answer was streamed: a retry would splice a second answer onto it.</summary>
    public static readonly FailureDetail MidAnswer = new(502, "server_error", "provider_unavailable", null,
        "the provider failed mid-answer and a streamed answer cannot start over; repeat the request", Retryable: true);
}
