using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Access;

/// <summary>Optional bearer API keys: <c>API_KEYS=name:key,name2:key2</c>. Unset: the API is open.</summary>
public sealed class ApiKeyOptions
{
    [ConfigurationKeyName("API_KEYS")]
    public string? ApiKeys { get; set; }

    /// <summary>Requests per minute each key may make (0: no limit), with bursts of up to ten seconds' worth; shared by all gateways through Redis.</summary>
    [ConfigurationKeyName("API_KEY_RPM"), System.ComponentModel.DataAnnotations.Range(0, 1_000_000, ErrorMessage = "API_KEY_RPM must be between {1} and {2}")]
    public int RequestsPerMinute { get; set; }

    /// <summary>One token bucket per key name, in this process; null when there is no limit.</summary>
    public PartitionedRateLimiter<string>? CreateLimiter()
    {
        if (RequestsPerMinute == 0)
            return null;
        // Whole tokens per period: below one request a second the period stretches instead.
        var (period, tokens) = RequestsPerMinute >= 60
            ? (TimeSpan.FromSeconds(1), RequestsPerMinute / 60)
            : (TimeSpan.FromSeconds(60.0 / RequestsPerMinute), 1);
        var burst = Math.Max(tokens, RequestsPerMinute / 6);
        return PartitionedRateLimiter.Create<string, string>(name => RateLimitPartition.GetTokenBucketLimiter(name, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = period,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    public static bool TryParse(string? text, out List<(string Name, byte[] Hash)> keys, out string error)
    {
        keys = [];
        error = "";
        if (string.IsNullOrWhiteSpace(text))
            return true;
        foreach (var entry in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = entry.IndexOf(':');
            if (colon <= 0 || colon == entry.Length - 1)
            {
                error = "API_KEYS must be name:key pairs separated by commas (a key is never shown here)";
                return false;
            }
            keys.Add((entry[..colon], SHA256.HashData(Encoding.UTF8.GetBytes(entry[(colon + 1)..]))));
        }
        return true;
    }
}

public sealed class ApiKeyOptionsValidator : IValidateOptions<ApiKeyOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiKeyOptions options)
    {
        if (!ApiKeyOptions.TryParse(options.ApiKeys, out var keys, out var error))
            return ValidateOptionsResult.Fail(error);
        if (options.RequestsPerMinute is < 0 or > 1_000_000)
            return ValidateOptionsResult.Fail("API_KEY_RPM must be between 0 and 1000000");
        if (options.RequestsPerMinute > 0 && keys.Count == 0)
            return ValidateOptionsResult.Fail("API_KEY_RPM limits each API key: set API_KEYS too");
        return ValidateOptionsResult.Success;
    }
}

public static class ApiKeyAuthentication
{
    const string ItemKey = "llmstream.api_key_name";
    static readonly string[] ProtectedPrefixes = ["/chat", "/embeddings", "/stream", "/stats", "/v1"];

    /// <summary>The name of the key the request came with; null when keys are not configured.</summary>
    public static string? ApiKeyName(this HttpContext http) => http.Items[ItemKey] as string;

    /// <summary>The scope of an Idempotency-Key: one client's keys never collide with another's.</summary>
    public static string IdempotencyScope(this HttpContext http) => http.ApiKeyName() ?? "anonymous";

    /// <summary>
    /// When API_KEYS is set, the API (not health, metrics, docs or the page) needs <c>Authorization: Bearer KEY</c>;
    /// GET /stream also takes <c>?api_key=</c>, since a browser's EventSource cannot send headers.
    /// </summary>
    public static WebApplication UseApiKeys(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<ApiKeyOptions>>().Value;
        ApiKeyOptions.TryParse(options.ApiKeys, out var keys, out _);
        if (keys.Count == 0)
            return app;
        var budget = options.RequestsPerMinute > 0 ? app.Services.GetRequiredService<IApiKeyBudget>() : null;

        app.Use(async (http, next) =>
        {
            var path = http.Request.Path.Value ?? "";
            if (!ProtectedPrefixes.Any(p => path.StartsWith(p, StringComparison.OrdinalIgnoreCase)))
            {
                await next(http);
                return;
            }
            var header = http.Request.Headers.Authorization.FirstOrDefault();
            var presented = header?.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) == true ? header[7..].Trim()
                : path.StartsWith("/stream", StringComparison.OrdinalIgnoreCase) ? http.Request.Query["api_key"].FirstOrDefault()
                : null;
            var name = presented is null ? null : Match(keys, presented);
            if (name is null)
            {
                http.Response.Headers.WWWAuthenticate = "Bearer";
                const string message = "a valid API key is required: Authorization: Bearer <key>";
                if (path.StartsWith("/v1", StringComparison.OrdinalIgnoreCase))
                    await OpenAiError.WriteAsync(http, StatusCodes.Status401Unauthorized, message, null, "invalid_request_error");
                else
                    await Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized", detail: message).ExecuteAsync(http);
                return;
            }
            http.Items[ItemKey] = name;
            if (budget is not null)
            {
                if (await budget.TryTakeAsync(name) is { } wait)
                {
                    http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                    var limited = $"API key '{name}' is over its limit of {options.RequestsPerMinute} requests per minute (API_KEY_RPM); retry after the Retry-After header's seconds";
                    if (path.StartsWith("/v1", StringComparison.OrdinalIgnoreCase))
                        await OpenAiError.WriteAsync(http, StatusCodes.Status429TooManyRequests, limited, null, "rate_limit_exceeded");
                    else
                        await Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests", detail: limited).ExecuteAsync(http);
                    return;
                }
            }
            await next(http);
        });
        return app;
    }

    static string? Match(List<(string Name, byte[] Hash)> keys, string presented)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        string? found = null;
        foreach (var (name, expected) in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, expected))
                found = name; // no early exit: the time taken does not depend on which key matched
        }
        return found;
    }
}
