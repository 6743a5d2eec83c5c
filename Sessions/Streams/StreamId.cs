namespace LlmStream.Sessions.Streams;

/// <summary>A stream entry id: milliseconds and a sequence number.</summary>
public readonly record struct StreamId(long Milliseconds, long Sequence) : IComparable<StreamId>
{
    public static bool TryParse(string? value, out StreamId id)
    {
        id = default;
        if (string.IsNullOrEmpty(value) || value.Length > 41)
            return false;
        var dash = value.IndexOf('-');
        if (dash < 0)
            return value == "0";
        return long.TryParse(value.AsSpan(0, dash), System.Globalization.NumberStyles.None, null, out var ms)
            && long.TryParse(value.AsSpan(dash + 1), System.Globalization.NumberStyles.None, null, out var seq)
            && (id = new StreamId(ms, seq)) == id;
    }

    public static StreamId Parse(string value) =>
        TryParse(value, out var id) ? id : throw new FormatException($"'{value}' is not a stream id");

    public int CompareTo(StreamId other) =>
        Milliseconds != other.Milliseconds ? Milliseconds.CompareTo(other.Milliseconds) : Sequence.CompareTo(other.Sequence);

    /// <summary>The greatest id before this one: reading after it starts at this entry.</summary>
    public StreamId Before() => Sequence > 0 ? new(Milliseconds, Sequence - 1) : new(Milliseconds - 1, long.MaxValue);

    public override string ToString() => $"{Milliseconds}-{Sequence}";
}
