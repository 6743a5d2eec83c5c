using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway;

/// <summary>Optional bearer API keys: <c>API_KEYS=name:key,name2:key2</c>. Unset: the API is open.</summary>
public sealed class ApiKeyOptions
{
    [ConfigurationKeyName("API_KEYS")]
    public string? ApiKeys { get; set; }

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
    public ValidateOptionsResult Validate(string? name, ApiKeyOptions options) =>
        ApiKeyOptions.TryParse(options.ApiKeys, out _, out var error) ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(error);
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
        ApiKeyOptions.TryParse(app.Services.GetRequiredService<IOptions<ApiKeyOptions>>().Value.ApiKeys, out var keys, out _);
        if (keys.Count == 0)
            return app;

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
