using System.Text.Json;

namespace LlmStream.Messaging;

/// <summary>How commands are written into Redis Streams entries (MassTransit's transports use their own envelope).</summary>
public static class MessageBodies
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string TypeName(Type type) => type.FullName ?? type.Name;

    public static byte[] Serialize<T>(T message) => JsonSerializer.SerializeToUtf8Bytes(message, Json);

    /// <exception cref="UndecodableMessageException">The body is not a <typeparamref name="T"/>.</exception>
    public static T Deserialize<T>(ReadOnlyMemory<byte> body)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(body.Span, Json) ?? throw new UndecodableMessageException($"the body is null, not a {typeof(T).Name}");
        }
        catch (JsonException e)
        {
            throw new UndecodableMessageException($"the body is not a valid {typeof(T).Name}: {e.Message}", e);
        }
    }
}

/// <summary>A message that no retry can help: it goes to the dead letters at once.</summary>
public sealed class UndecodableMessageException(string message, Exception? inner = null) : Exception(message, inner);
