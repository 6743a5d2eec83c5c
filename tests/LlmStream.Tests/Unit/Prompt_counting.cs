using System.Text;
using LlmStream.Providers;
using Microsoft.ML.Tokenizers;

namespace LlmStream.Tests.Unit;

/// <summary>
/// Prompts are counted in time linear in their length: pre-tokens longer than <see cref="PromptTokens.SliceLength"/>
/// characters are counted in slices. tiktoken's own count (quadratic in a pre-token's length) is the oracle where it is
/// affordable.
/// </summary>
public sealed class Prompt_counting
{
    static readonly Tokenizer Exact = TiktokenTokenizer.CreateForModel("gpt-4o-mini");
    readonly PromptTokens _tokens = new();

    static string RandomUnicode(int chars, int seed)
    {
        var random = new Random(seed);
        var text = new StringBuilder();
        while (text.Length < chars)
        {
            var codePoint = random.Next(0x20, 0x2FFFF);
            if (codePoint is >= 0xD800 and <= 0xDFFF)
                continue;
            text.Append(char.ConvertFromUtf32(codePoint));
        }
        return text.ToString();
    }

    static IEnumerable<TestCaseData> Texts()
    {
        yield return new TestCaseData("a run of one character", new string('a', 12_000));
        yield return new TestCaseData("random Unicode", RandomUnicode(12_000, seed: 1));
        yield return new TestCaseData("CJK without spaces", new string([.. Enumerable.Range(0, 8_000).Select(i => (char)(0x4E00 + i * 7 % 20_000))]));
        yield return new TestCaseData("ordinary words", string.Join(' ', Enumerable.Range(0, 5_000).Select(i => "word" + i % 97)));
        yield return new TestCaseData("base64", Convert.ToBase64String([.. Enumerable.Range(0, 9_000).Select(i => (byte)(i * 31))]));
        yield return new TestCaseData("short", "Why is the sky blue?");
    }

    [TestCaseSource(nameof(Texts))]
    public void Counts_as_tiktoken_does(string kind, string text)
    {
        Assert.That(_tokens.CountText("gpt-4o-mini", text), Is.EqualTo(Exact.CountTokens(text)), kind);
    }

    [Test]
    public void Overcounts_at_most_a_little_where_a_cut_parts_what_tiktoken_would_merge()
    {
        var word = string.Concat(Enumerable.Repeat("antidisestablishment", 600)); // one 12,000-character pre-token
        var exact = Exact.CountTokens(word);
        var counted = _tokens.CountText("gpt-4o-mini", word);
        Assert.That(counted, Is.InRange(exact, exact * 1.03), $"exact {exact}");
    }

    [Test]
    public void Costs_a_run_of_one_character_the_same_per_character_at_any_length()
    {
        // Slicing makes the count of a run additive: 900,000 characters (the hostile message that stalled workers for
        // minutes) count as 45 runs of 20,000, whose count tiktoken itself gives.
        var exact = Exact.CountTokens(new string('a', 20_000));
        Assert.That(_tokens.CountText("gpt-4o-mini", new string('a', 900_000)), Is.EqualTo(45 * exact));
    }

    [Test]
    public void Never_cuts_a_surrogate_pair()
    {
        // 255 emoji in a row: every slice boundary falls inside a pair unless the slicer steps back.
        var emoji = string.Concat(Enumerable.Repeat("\U0001F600", 700));
        Assert.That(_tokens.CountText("gpt-4o-mini", emoji), Is.EqualTo(Exact.CountTokens(emoji)));
    }
}
