using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace LlmStream.ServiceDefaults.RateLimiting;

/// <summary>
/// Counts a prompt's tokens before the call with the model's tiktoken encoding (o200k for the gpt-4o family,
/// cl100k for older models; o200k for models tiktoken does not know, e.g. a local Llama: close enough to reserve).
/// </summary>
public sealed class PromptTokens
{
    // Per message the chat format adds a few tokens (role, separators); and 3 to prime the reply.
    const int PerMessage = 3;
    const int ReplyPriming = 3;

    static readonly Lazy<Tokenizer> Fallback = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    readonly ConcurrentDictionary<string, Tokenizer> _byModel = new();

    const int MaxCachedModels = 64; // model names come from clients: the cache must not grow without bound

    /// <summary>A chat prompt: its messages plus the chat format's overhead.</summary>
    public int Count(string model, IEnumerable<string> messages)
    {
        var tokenizer = For(model);
        return messages.Sum(m => tokenizer.CountTokens(m) + PerMessage) + ReplyPriming;
    }

    /// <summary>One text as it is (an embedding input).</summary>
    public int CountText(string model, string text) => For(model).CountTokens(text);

    Tokenizer For(string model)
    {
        if (!_byModel.TryGetValue(model, out var tokenizer))
        {
            try { tokenizer = TiktokenTokenizer.CreateForModel(model); }
            catch (NotSupportedException) { tokenizer = Fallback.Value; }
            if (_byModel.Count < MaxCachedModels)
                _byModel.TryAdd(model, tokenizer);
        }
        return tokenizer;
    }
}
