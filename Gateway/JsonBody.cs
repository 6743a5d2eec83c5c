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
    static ReadOnlySpan<byte> Utf8ByteOrderMark => [0xEF, 0xBB, 0xBF];

    public static async Task<(JsonElement Body, ProblemHttpResult? Problem)> ReadObjectAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
            return (default, TooLarge(maxBytes));
        if (request.ContentType is { } contentType && !IsUtf8Json(contentType))
            return (default, TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType,
                title: "Unsupported media type", detail: $"the body must be UTF-8 JSON (Content-Type: application/json), not '{contentType}'"));

        // Sized to the declared length (most clients send one): a small body costs its own size, not a 16 KB buffer.
        var buffer = new ArrayBufferWriter<byte>(request.ContentLength is { } declared ? (int)Math.Max(declared + 1, 256) : 4096);
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(1);
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

        // A byte-order mark says "UTF-8" and nothing else (Windows tools write one): it is not part of the JSON.
        var body = buffer.WrittenMemory;
        if (body.Span.StartsWith(Utf8ByteOrderMark))
            body = body[Utf8ByteOrderMark.Length..];
        if (body.Length == 0)
            return (default, Invalid("the request body is empty: send a JSON object"));
        // The JSON reader checks UTF-8 only in the strings a handler reads later: check all of it once, here.
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
            return (default, Invalid($"the body is not valid UTF-8 (from byte {FirstInvalidUtf8(body.Span) + buffer.WrittenCount - body.Length})"));

        try
        {
            using var document = JsonDocument.Parse(body, DocumentOptions);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return (default, Invalid($"the body must be a JSON object, not {Describe(document.RootElement.ValueKind)}"));
            if (FindInvalidText(document.RootElement, "") is { } path)
                return (default, Invalid($"'{path}' holds an escaped lone surrogate (\\ud800-\\udfff), which is not text", path));
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

    static ProblemHttpResult Invalid(string detail, string? field = null) => field is null
        ? TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid JSON body", detail: detail)
        : TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid JSON body", detail: detail,
            extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { [field] = [detail] } });

    /// <summary>application/json or any +json type, in UTF-8 (the only charset JSON may use between systems, RFC 8259).</summary>
    static bool IsUtf8Json(string contentType)
    {
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media))
            return false;
        var type = media.MediaType.Value ?? "";
        var json = type.Equals("application/json", StringComparison.OrdinalIgnoreCase) || type.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
        var charset = media.Charset.Value;
        return json && (string.IsNullOrEmpty(charset) || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase));
    }

    static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        var offset = 0;
        while (offset < bytes.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(bytes[offset..], out _, out var consumed) != System.Buffers.OperationStatus.Done)
                return offset;
            offset += consumed;
        }
        return offset;
    }

    /// <summary>
    /// The path of the first string or name that cannot become .NET text (a JSON escape of a lone surrogate):
    /// reading it later would throw, so the request is refused here, naming where it is.
    /// </summary>
    static string? FindInvalidText(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                try { element.GetString(); return null; }
                catch (InvalidOperationException) { return path.Length == 0 ? "body" : path; }
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (FindInvalidText(item, $"{path}[{index++}]") is { } found)
                        return found;
                }
                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try { name = property.Name; }
                    catch (InvalidOperationException) { return path.Length == 0 ? "body" : path; }
                    if (FindInvalidText(property.Value, path.Length == 0 ? name : $"{path}.{name}") is { } found)
                        return found;
                }
                return null;
            default:
                return null;
        }
    }
}
