using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace LlmStream.Sessions.Embeddings;

/// <summary>A chunk as stored: four little-endian int32 (first, count, dimensions, prompt tokens), then the floats.</summary>
public static class EmbeddingChunkFormat
{
    const int HeaderBytes = 4 * sizeof(int);

    public static byte[] Encode(EmbeddingChunk chunk)
    {
        var bytes = new byte[HeaderBytes + chunk.Values.Length * sizeof(float)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(0), chunk.First);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), chunk.Count);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), chunk.Dimensions);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), chunk.PromptTokens);
        var values = bytes.AsSpan(HeaderBytes);
        if (BitConverter.IsLittleEndian)
            MemoryMarshal.AsBytes(chunk.Values.AsSpan()).CopyTo(values);
        else
            for (var i = 0; i < chunk.Values.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(values[(i * sizeof(float))..], chunk.Values[i]);
        return bytes;
    }

    public static EmbeddingChunk Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < HeaderBytes)
            throw new FormatException("a stored embedding chunk is shorter than its header");
        var first = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        var count = BinaryPrimitives.ReadInt32LittleEndian(bytes[4..]);
        var dimensions = BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]);
        var tokens = BinaryPrimitives.ReadInt32LittleEndian(bytes[12..]);
        var data = bytes[HeaderBytes..];
        if (data.Length != (long)count * dimensions * sizeof(float))
            throw new FormatException($"a stored embedding chunk holds {data.Length} bytes, not {count} × {dimensions} floats");
        var values = new float[count * dimensions];
        if (BitConverter.IsLittleEndian)
            data.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        else
            for (var i = 0; i < values.Length; i++)
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(i * sizeof(float))..]);
        return new EmbeddingChunk(first, count, dimensions, values, tokens);
    }
}
