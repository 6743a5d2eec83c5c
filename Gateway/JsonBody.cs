using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LlmStream.Gateway;

/// <summary>
/// Reads a JSON object body within the size limit. Every failure becomes an RFC 7807 problem: 413 for a body
/// over the limit, 415 for another content type, 400 for anything that is not one JSON object.
/// </summary>
public static class JsonBody
{
    static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 32 };

    public static async Task<(JsonElement Body, ProblemHttpResult? Problem)> ReadObjectAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
            return (default, TooLarge(maxBytes));
        if (request.ContentType is { } contentType && !contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
            return (default, TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType,
                title: "Unsupported media type", detail: $"the body must be JSON (Content-Type: application/json), not '{contentType}'"));

        var buffer = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(8192);
                var read = await request.Body.ReadAsync(memory, cancellationToken);
                if (read == 0)
                    break;
                buffer.Advance(read);
                if (buffer.WrittenCount > maxBytes)
                    return (default, TooLarge(maxBytes));
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (default, TooLarge(maxBytes));
        }

        if (buffer.WrittenCount == 0)
            return (default, Invalid("the request body is empty: send a JSON object"));

        try
        {
            using var document = JsonDocument.Parse(buffer.WrittenMemory, DocumentOptions);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return (default, Invalid($"the body must be a JSON object, not {Describe(document.RootElement.ValueKind)}"));
            return (document.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return (default, Invalid($"the body is not valid JSON: {e.Message}"));
        }
    }

    /// <summary>Strict bodies: every field not in <paramref name="known"/> is an error under its own name.</summary>
    public static void RejectUnknownFields(JsonElement body, IReadOnlySet<string> known, Dictionary<string, string[]> errors)
    {
        foreach (var property in body.EnumerateObject())
        {
            string name;
            try { name = property.Name; }
            catch (InvalidOperationException) { errors["body"] = ["a field name is not valid UTF-16 text"]; continue; }
            if (!known.Contains(name))
                errors[name] = [$"unknown field; expected one of {string.Join(", ", known)}"];
        }
    }

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    static ProblemHttpResult TooLarge(int maxBytes) =>
        TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Request body too large",
            detail: $"the request body is larger than {maxBytes} bytes (MAX_REQUEST_BYTES)");

    static ProblemHttpResult Invalid(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid JSON body", detail: detail);
}
