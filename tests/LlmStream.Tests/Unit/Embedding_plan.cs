using LlmStream.EmbeddingWorker;
using LlmStream.Providers;
using LlmStream.Sessions.Embeddings;

namespace LlmStream.Tests.Unit;

public sealed class Embedding_plan
{
    [Test]
    public void Chunks_hold_at_most_the_configured_texts() =>
        Assert.That(EmbeddingPlan.Cut([1, 1, 1, 1, 1, 1, 1], maxTexts: 3, maxTokens: 100), Is.EqualTo(new[] { 0, 3, 6 }));

    [Test]
    public void Chunks_hold_at_most_the_configured_tokens() =>
        Assert.That(EmbeddingPlan.Cut([40, 40, 40, 10, 90], maxTexts: 100, maxTokens: 100), Is.EqualTo(new[] { 0, 2, 4 }));

    [Test]
    public void A_text_above_the_token_limit_gets_a_chunk_of_its_own() =>
        Assert.That(EmbeddingPlan.Cut([10, 500, 10], maxTexts: 100, maxTokens: 100), Is.EqualTo(new[] { 0, 1, 2 }));

    [Test]
    public void Ranges_cover_every_text_once()
    {
        int[] plan = [0, 3, 6];
        var covered = Enumerable.Range(0, plan.Length).SelectMany(i =>
        {
            var (first, count) = EmbeddingPlan.Range(plan, i, 7);
            return Enumerable.Range(first, count);
        });
        Assert.That(covered, Is.EqualTo(Enumerable.Range(0, 7)));
    }

    [Test]
    public void Simulated_vectors_are_deterministic_unit_vectors_that_differ_by_text()
    {
        var a = SimulatedEmbeddingGenerator.Vector("hello", 256);
        Assert.That(SimulatedEmbeddingGenerator.Vector("hello", 256), Is.EqualTo(a));
        Assert.That(Math.Sqrt(a.Sum(v => (double)v * v)), Is.EqualTo(1.0).Within(1e-5));
        Assert.That(SimulatedEmbeddingGenerator.Vector("hello!", 256), Is.Not.EqualTo(a));
    }

    [Test]
    public void Stored_chunks_round_trip_exactly()
    {
        var chunk = new EmbeddingChunk(6, 2, 3, [0.5f, -1f, float.Epsilon, 3.25f, 0f, -0.125f], 17);
        var back = EmbeddingChunkFormat.Decode(EmbeddingChunkFormat.Encode(chunk));
        Assert.That((back.First, back.Count, back.Dimensions, back.PromptTokens), Is.EqualTo((6, 2, 3, 17)));
        Assert.That(back.Values, Is.EqualTo(chunk.Values));
    }
}
