namespace LlmStream.Messaging;

/// <summary>
/// The one fairness rule of a worker process (PRIORITY_FAIRNESS): after that many starts in a row that passed over
/// waiting lower-level work, the next start is a fair turn and goes to the longest waiting (lowest-level) work.
/// <see cref="PrioritySlots"/> follows it when granting slots to delivered messages; the Redis Streams reader
/// follows the same counter when choosing which stream to read from, since there it reads no more than its free slots.
/// </summary>
public sealed class FairTurns
{
    readonly Lock _lock = new();
    readonly int _fairness;
    int _passedOver;

    public FairTurns(int fairness)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(fairness, 2);
        _fairness = fairness;
    }

    /// <summary>The next start should go to the longest waiting work.</summary>
    public bool IsDue
    {
        get { lock (_lock) return _passedOver >= _fairness; }
    }

    /// <summary>Counts <paramref name="starts"/> started in priority order: they passed over lower-level work, or did not.</summary>
    public void CountStarts(int starts, bool passedOverLowerWork)
    {
        lock (_lock)
            _passedOver = passedOverLowerWork ? _passedOver + starts : 0;
    }

    /// <summary>The fair turn was given: counting starts again.</summary>
    public void Given()
    {
        lock (_lock)
            _passedOver = 0;
    }
}
