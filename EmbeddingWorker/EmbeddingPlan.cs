namespace LlmStream.EmbeddingWorker;

/// <summary>Cuts a batch into provider requests: consecutive texts, at most N texts and T tokens per request.</summary>
public static class EmbeddingPlan
{
    /// <returns>The first text of each chunk; a chunk runs to the next one's first text (the last to the end).</returns>
    /// <remarks>A single text above <paramref name="maxTokens"/> gets a chunk of its own (the gateway already refused texts over the model's limit).</remarks>
    public static int[] Cut(IReadOnlyList<int> tokensPerText, int maxTexts, int maxTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTexts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        var starts = new List<int>();
        var count = 0;
        long tokens = 0;
        for (var i = 0; i < tokensPerText.Count; i++)
        {
            if (starts.Count == 0 || count == maxTexts || (count > 0 && tokens + tokensPerText[i] > maxTokens))
            {
                starts.Add(i);
                count = 0;
                tokens = 0;
            }
            count++;
            tokens += tokensPerText[i];
        }
        return [.. starts];
    }

    /// <summary>Texts [First, First + Count) of chunk <paramref name="index"/>.</summary>
    public static (int First, int Count) Range(IReadOnlyList<int> plan, int index, int totalTexts) =>
        (plan[index], (index + 1 < plan.Count ? plan[index + 1] : totalTexts) - plan[index]);
}
