using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.AI;

namespace LlmStream.Providers;

/// <summary>
/// Embeddings without a provider, so the product works offline: each vector is derived from the SHA-256 of the
/// text (the same text always gives the same vector) and has unit length, like a real model's. Not semantic.
/// </summary>
public sealed class SimulatedEmbeddingGenerator(string model) : IEmbeddingGenerator<string, Embedding<float>>
{
    public const int DefaultDimensions = 256;

    public static float[] Vector(string text, int dimensions)
    {
        var input = Encoding.UTF8.GetBytes(text + "\0");
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var vector = new float[dimensions];
        double sumOfSquares = 0;
        for (var filled = 0; filled < dimensions;)
        {
            input[^1] = (byte)(filled / 8); // a new block of eight values from each hash
            SHA256.HashData(input, hash);
            for (var j = 0; j < hash.Length && filled < dimensions; j += sizeof(uint), filled++)
            {
                var value = BinaryPrimitives.ReadUInt32LittleEndian(hash[j..]) / (double)uint.MaxValue * 2 - 1;
                vector[filled] = (float)value;
                sumOfSquares += value * value;
            }
        }
        var norm = (float)Math.Sqrt(sumOfSquares);
        for (var i = 0; i < dimensions && norm > 0; i++)
            vector[i] /= norm;
        return vector;
    }

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var dimensions = options?.Dimensions ?? DefaultDimensions;
        var texts = values.ToList();
        var embeddings = new GeneratedEmbeddings<Embedding<float>>(texts.Select(t => new Embedding<float>(Vector(t, dimensions)) { ModelId = ModelId }))
        {
            Usage = new UsageDetails { InputTokenCount = texts.Sum(t => Math.Max(1, t.Length / 4)) },
        };
        return Task.FromResult(embeddings);
    }

    string ModelId => SimulatedChatClient.ModelPrefix + model;

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceType == typeof(EmbeddingGeneratorMetadata) ? new EmbeddingGeneratorMetadata("simulated", null, ModelId, DefaultDimensions) : null;

    public void Dispose() { }
}
