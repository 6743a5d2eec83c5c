using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace LlmStream.Providers;

/// <summary>
/// Counts a prompt's tokens with the model's tiktoken encoding (o200k for the gpt-4o family, cl100k for older models;
/// o200k for models tiktoken does not know, e.g. a local Llama: close enough to reserve and to check a context limit),
/// in time linear in the text.
/// </summary>
/// <remarks>
/// Byte-pair merging costs the square of a pre-token's length, and a client can send one pre-token of a megabyte (a
/// run of one character, a blob without spaces): 20,000 characters of 'a' took 0.4 s, 900,000 would take minutes. So a
/// pre-token longer than <see cref="SliceLength"/> characters is counted in slices of that length. Ordinary text has
/// no such pre-tokens and is counted exactly; for the others the sum of the slices is an estimate, never lower than
/// the exact count in what we measured (0 for a run of one character and for random Unicode, +1.6 % for a 40,000
/// character word of one repeated syllable: a cut can only keep apart bytes that the whole word would have merged).
/// </remarks>
public sealed class PromptTokens
{
    // Per message the chat format adds a few tokens (role, separators); and 3 to prime the reply.
    const int PerMessage = 3;
    const int ReplyPriming = 3;

    /// <summary>Pre-tokens longer than this are counted in slices of this many characters.</summary>
    public const int SliceLength = 256;

    static readonly Lazy<Tokenizer> Fallback = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    readonly ConcurrentDictionary<string, Tokenizer> _byModel = new();

    const int MaxCachedModels = 64; // model names come from clients: the cache must not grow without bound

    /// <summary>A chat prompt: its messages plus the chat format's overhead.</summary>
    public int Count(string model, IEnumerable<string> messages)
    {
        var tokenizer = For(model);
        var total = ReplyPriming;
        foreach (var message in messages)
            total += Count(tokenizer, message) + PerMessage;
        return total;
    }

    /// <summary>
    /// Loads <paramref name="model"/>'s encoding (tens of megabytes of vocabulary, most of a second) and counts once, so
    /// that the first request does not wait for it.
    /// </summary>
    public void Warm(string model) => CountText(model, "warm up");

    /// <summary>One text as it is (an embedding input).</summary>
    public int CountText(string model, string text) => Count(For(model), text);

    static int Count(Tokenizer tokenizer, string text)
    {
        if (text.Length <= SliceLength)
            return tokenizer.CountTokens(text);
        if (tokenizer.PreTokenizer is not { } preTokenizer)
            return CountSliced(tokenizer, text, 0, text.Length);
        var total = 0;
        foreach (var (offset, length) in preTokenizer.PreTokenize(text))
        {
            total += length <= SliceLength
                ? tokenizer.CountTokens(text.AsSpan(offset, length), considerPreTokenization: false)
                : CountSliced(tokenizer, text, offset, length);
        }
        return total;
    }

    static int CountSliced(Tokenizer tokenizer, string text, int offset, int length)
    {
        var total = 0;
        var end = offset + length;
        for (var start = offset; start < end;)
        {
            var count = Math.Min(SliceLength, end - start);
            // Never cut a surrogate pair: each half alone would count as an invalid character.
            if (start + count < end && char.IsHighSurrogate(text[start + count - 1]))
                count--;
            total += tokenizer.CountTokens(text.AsSpan(start, count), considerPreTokenization: false);
            start += count;
        }
        return total;
    }

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

/// <summary>What of a chat request reaches the model as prompt text, for counting.</summary>
public static class ChatPrompt
{
    /// <summary>The messages' text, the tool calls they carry and the tools offered (their schemas are part of the prompt too).</summary>
    public static IEnumerable<string> Texts(Contracts.ChatRequested request)
    {
        if (!string.IsNullOrWhiteSpace(request.SystemPrompt))
            yield return request.SystemPrompt;
        if (request.Conversation is { Count: > 0 } conversation)
        {
            foreach (var turn in conversation)
            {
                yield return turn.Content;
                foreach (var call in turn.ToolCalls ?? [])
                    yield return call.Name + call.Arguments;
            }
        }
        else
            yield return request.Message;
        foreach (var tool in request.Tools ?? [])
            yield return tool.Name + " " + tool.Description + " " + tool.Parameters;
    }

    public static int CountPrompt(this PromptTokens tokens, Contracts.ChatRequested request) => tokens.Count(request.Model, Texts(request));
}
