namespace LlmStream.Sessions.Streams;

/// <summary>Reading the line-per-field texts the stores write (wake messages, compacted chunks) without copying them.</summary>
internal static class TextLines
{
    /// <summary>The line at the start of <paramref name="rest"/> (without its '\n'); <paramref name="rest"/> moves past it.</summary>
    public static ReadOnlySpan<char> Next(ref ReadOnlySpan<char> rest)
    {
        var end = rest.IndexOf('\n');
        var line = end < 0 ? rest : rest[..end];
        rest = end < 0 ? [] : rest[(end + 1)..];
        return line;
    }
}
