using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text.Json;
using LlmStream.Sessions.Embeddings;

namespace LlmStream.Gateway.Embeddings;

/// <summary>
/// Writes a completed batch's vectors in input order, one stored chunk at a time, straight to the response:
/// a large result is never assembled in memory or read from Redis in one piece.
/// </summary>
public static class EmbeddingResultWriter
{
    /// <returns>False when a chunk has vanished (the result expired while it was read).</returns>
    public static async Task<bool> WriteDataAsync(Utf8JsonWriter json, PipeWriter body, IEmbeddingStore store, EmbeddingTask task,
        bool base64, bool openAiObjects, CancellationToken cancellationToken)
    {
        json.WriteStartArray("data");
        for (var index = 0; index < task.ChunksTotal; index++)
        {
            if (await store.ReadChunkAsync(task.TaskId, index, cancellationToken) is not { } chunk)
                return false;
            for (var row = 0; row < chunk.Count; row++)
            {
                json.WriteStartObject();
                if (openAiObjects)
                    json.WriteString("object", "embedding");
                json.WriteNumber("index", chunk.First + row);
                WriteVector(json, chunk.Vector(row), base64);
                json.WriteEndObject();
            }
            await json.FlushAsync(cancellationToken);
            await body.FlushAsync(cancellationToken);
        }
        json.WriteEndArray();
        return true;
    }

    /// <summary>An array of floats, or (as OpenAI's encoding_format=base64) the little-endian float32 bytes in base64.</summary>
    static void WriteVector(Utf8JsonWriter json, ReadOnlySpan<float> vector, bool base64)
    {
        if (base64)
        {
            var bytes = new byte[vector.Length * sizeof(float)];
            for (var i = 0; i < vector.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vector[i]);
            json.WriteBase64String("embedding", bytes);
            return;
        }
        json.WriteStartArray("embedding");
        foreach (var value in vector)
            json.WriteNumberValue(value);
        json.WriteEndArray();
    }

    public static void WriteUsage(Utf8JsonWriter json, EmbeddingTask task)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", task.PromptTokens);
        json.WriteNumber("total_tokens", task.PromptTokens);
        json.WriteEndObject();
    }
}
