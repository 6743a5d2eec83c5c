using System.ComponentModel.DataAnnotations;

namespace LlmStream.Gateway;

public sealed class GatewayOptions : IValidatableObject
{
    [ConfigurationKeyName("PORT"), Range(1, 65535, ErrorMessage = "PORT must be between {1} and {2}")]
    public int Port { get; set; } = 8007;

    /// <summary>Address to listen on, as set; see <see cref="ListenHost"/> for the default.</summary>
    [ConfigurationKeyName("HOST")]
    public string? Host { get; set; }

    /// <summary>
    /// HOST, or by default 127.0.0.1 in the single-process default (make run: nobody else on the network may spend the
    /// provider key it may hold) and 0.0.0.0 beside a broker (containers must be reachable from outside themselves).
    /// </summary>
    public string ListenHost(bool singleProcess) => string.IsNullOrWhiteSpace(Host) ? singleProcess ? "127.0.0.1" : "0.0.0.0" : Host.Trim();

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    [ConfigurationKeyName("MAX_REQUEST_BYTES"), Range(1024, 64 * 1024 * 1024, ErrorMessage = "MAX_REQUEST_BYTES must be between {1} and {2}")]
    public int MaxRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Seconds between SSE keep-alive comments on an idle stream.</summary>
    [ConfigurationKeyName("SSE_KEEPALIVE_SECONDS"), Range(1, 300, ErrorMessage = "SSE_KEEPALIVE_SECONDS must be between {1} and {2}")]
    public int KeepAliveSeconds { get; set; } = 15;

    public TimeSpan KeepAlive => TimeSpan.FromSeconds(KeepAliveSeconds);

    /// <summary>
    /// Whether /stream names its events (event: token ...). false: they go unnamed with the name in the data's
    /// <c>event</c>, as clients of the Python original need (EventSource's onmessage sees only unnamed events).
    /// </summary>
    [ConfigurationKeyName("STREAM_EVENT_NAMES")]
    public bool StreamEventNames { get; set; } = true;

    /// <summary>
    /// A task whose worker has been gone this long, with no new attempt started elsewhere, ends failed: its message was
    /// lost with the worker (e.g. a broker node and the worker failed together). Longer than any redelivery takes:
    /// RabbitMQ gives a vanished worker's messages back after its 60 s heartbeat, Redis after REDIS_CLAIM_IDLE_SECONDS.
    /// </summary>
    [ConfigurationKeyName("ORPHAN_GRACE_SECONDS"), Range(3, 86_400, ErrorMessage = "ORPHAN_GRACE_SECONDS must be between {1} and {2}")]
    public int OrphanGraceSeconds { get; set; } = 300;

    public TimeSpan OrphanGrace => TimeSpan.FromSeconds(OrphanGraceSeconds);

    /// <summary>Origins whose pages may call the API (the compose web service), comma-separated; empty: none.</summary>
    [ConfigurationKeyName("CORS_ORIGINS")]
    public string? CorsOrigins { get; set; }

    /// <summary>The origins of <see cref="CorsOrigins"/> as browsers send them (scheme://host[:port]).</summary>
    public IReadOnlyList<string> AllowedOrigins => ParseOrigins(CorsOrigins, out var origins, out _) ? origins : [];

    public static bool ParseOrigins(string? text, out List<string> origins, out string error)
    {
        origins = [];
        error = "";
        foreach (var entry in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // An origin has no path, query or fragment; a trailing slash is tolerated and dropped.
            if (!Uri.TryCreate(entry, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
                || uri.AbsolutePath != "/" || uri.Query != "" || uri.Fragment != "" || uri.UserInfo != "")
            {
                error = $"CORS_ORIGINS: '{entry}' is not an origin; list absolute http(s) URLs without a path, e.g. http://localhost:3000";
                return false;
            }
            origins.Add(uri.GetLeftPart(UriPartial.Authority));
        }
        return true;
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Host is not null && string.IsNullOrWhiteSpace(Host))
            yield return new ValidationResult("HOST must not be empty (leave it out for the default)", [nameof(Host)]);
        if (!ParseOrigins(CorsOrigins, out _, out var error))
            yield return new ValidationResult(error, [nameof(CorsOrigins)]);
    }
}
