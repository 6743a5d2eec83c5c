using System.ClientModel;
using System.Text.Json;
using LlmStream.Sessions.Streams;

namespace LlmStream.Providers;

/// <summary>A provider failure worth another attempt (429, 5xx, network, provider timeout).</summary>
public sealed class TransientProviderException(string message, Exception inner) : Exception(message, inner);

/// <summary>A provider error put in words a person can read, whether retrying can help, and when the provider asked us to.</summary>
public sealed record ProviderFailure(bool IsTransient, string Reason, TimeSpan? RetryAfter = null, bool IsRateLimit = false)
{
    /// <summary>The provider's answer: its HTTP status and its error object (OpenAI's and Azure's shape), when it answered.</summary>
    public int? Status { get; init; }
    public string? ErrorType { get; init; }
    public string? ErrorCode { get; init; }
    public string? ErrorParam { get; init; }
    public string? ErrorMessage { get; init; }

    public static ProviderFailure From(Exception e)
    {
        var failure = Classify(e) with { RetryAfter = RetryAfterOf(e), IsRateLimit = e is ClientResultException { Status: 429 } };
        if (e is not ClientResultException { Status: > 0 } c)
            return failure;
        failure = failure with { Status = c.Status };
        try
        {
            if (c.GetRawResponse()?.Content is { } content && content.ToMemory().Length is > 0 and < 64 * 1024)
            {
                using var body = JsonDocument.Parse(content.ToMemory());
                if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                    failure = failure with
                    {
                        ErrorType = Text(error, "type"),
                        ErrorCode = Text(error, "code"),
                        ErrorParam = Text(error, "param"),
                        ErrorMessage = Text(error, "message"),
                    };
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not OpenAI's error object: the status alone tells what happened.
        }
        return failure;
    }

    static string? Text(JsonElement error, string name) =>
        error.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>
    /// How the failure reads to an OpenAI client. The provider's refusal of the request itself (400, 404 for an unknown
    /// model or deployment, 422...) passes through with its status and error object: the client's request is at fault,
    /// and OpenAI's SDKs do not retry it. A refused key is ours to mend, not the client's: 502, with no retry. What a
    /// retry may mend (429, 5xx, a broken connection) keeps a retryable status.
    /// </summary>
    public FailureDetail ForClient() => Status switch
    {
        401 or 403 => new FailureDetail(502, "server_error", "provider_credentials_refused", null, Reason),
        429 => new FailureDetail(429, ErrorType ?? "requests", ErrorCode ?? "rate_limit_exceeded", null, Reason, Retryable: true),
        >= 400 and < 500 when !IsTransient => new FailureDetail(Status.Value, ErrorType ?? "invalid_request_error", ErrorCode, ErrorParam, ErrorMessage ?? Reason),
        _ when IsTransient => new FailureDetail(502, "server_error", "provider_unavailable", null, Reason, Retryable: true),
        _ => new FailureDetail(500, "server_error", null, null, Reason),
    };

    /// <summary>retry-after-ms, Retry-After in seconds or as an HTTP date, or OpenAI's x-ratelimit-reset-* ("1s", "6m0s", "20ms").</summary>
    public static TimeSpan? RetryAfterOf(Exception e)
    {
        if (e is not ClientResultException { } c || c.GetRawResponse() is not { } response)
            return null;
        var reset = new[] { "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens" }
            .Select(h => response.Headers.TryGetValue(h, out var v) ? ParseDuration(v) : null)
            .Max();
        if (response.Headers.TryGetValue("retry-after-ms", out var ms) && double.TryParse(ms, System.Globalization.CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
            return TimeSpan.FromMilliseconds(milliseconds);
        if (response.Headers.TryGetValue("Retry-After", out var value) && value is not null)
        {
            if (int.TryParse(value, out var seconds) && seconds >= 0)
                return TimeSpan.FromSeconds(seconds);
            if (DateTimeOffset.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at))
                return at > DateTimeOffset.UtcNow ? at - DateTimeOffset.UtcNow : TimeSpan.Zero;
        }
        return reset;
    }

    /// <summary>Go-style durations as OpenAI sends them: "1s", "6m0s", "1.5s", "20ms", "1h2m".</summary>
    public static TimeSpan? ParseDuration(string? value)
    {
        var match = System.Text.RegularExpressions.Regex.Match(value ?? "", @"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$");
        if (!match.Success || value!.Length == 0)
            return null;
        double Part(int i) => match.Groups[i].Success ? double.Parse(match.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
        return TimeSpan.FromHours(Part(1)) + TimeSpan.FromMinutes(Part(2)) + TimeSpan.FromSeconds(Part(3)) + TimeSpan.FromMilliseconds(Part(4));
    }

    static ProviderFailure Classify(Exception e) => e switch
    {
        ClientResultException { Status: 429 } => new(true, "the model provider is rate limiting requests (HTTP 429)"),
        ClientResultException { Status: >= 500 } c => new(true, $"the model provider failed (HTTP {c.Status})"),
        ClientResultException { Status: 408 } => new(true, "the model provider timed out (HTTP 408)"),
        ClientResultException { Status: 401 or 403 } c => new(false, $"the model provider refused the credentials (HTTP {c.Status}): check the API key"),
        ClientResultException { Status: 404 } => new(false, "the model provider does not know this model or deployment (HTTP 404)"),
        ClientResultException { Status: >= 400 } c => new(false, $"the model provider rejected the request (HTTP {c.Status}): {FirstLine(c.Message)}"),
        ClientResultException c => new(true, $"the model provider could not be reached: {FirstLine(c.Message)}"),
        HttpRequestException h => new(true, $"the model provider could not be reached: {FirstLine(h.Message)}"),
        IOException io => new(true, $"the connection to the model provider broke: {FirstLine(io.Message)}"),
        TimeoutException or TaskCanceledException => new(true, "the model provider did not answer in time"),
        _ => new(false, $"the generation failed: {FirstLine(e.Message)}"),
    };

    public static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length > 300 ? line[..300] + "…" : line;
    }
}
