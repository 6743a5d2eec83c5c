namespace LlmStream.ServiceDefaults.Bus;

/// <summary>
/// The in-flight slots one worker process shares across its high, default and low queues. A free slot
/// goes to the highest level waiting; but after <c>fairness</c> grants in a row that passed over a waiting
/// lower-level message, the next slot goes to the longest waiting message: low work is never starved.
/// </summary>
public sealed class PrioritySlots
{
    public const int Levels = 3;

    readonly Lock _lock = new();
    readonly Queue<Waiter>[] _waiting = [new(), new(), new()];
    readonly int _fairness;
    int _free;
    int _bypassed;
    long _sequence;

    public PrioritySlots(int slots, int fairness)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(fairness, 2);
        _free = slots;
        _fairness = fairness;
        Capacity = slots;
    }

    public int Capacity { get; }

    public int InUse
    {
        get { lock (_lock) return Capacity - _free; }
    }

    readonly int[] _busy = new int[Levels];

    /// <summary>Per level (0 = high): slots held, and messages waiting here for one (already delivered, not started).</summary>
    public IReadOnlyList<(int InFlight, int Held)> Load()
    {
        lock (_lock)
            return [.. Enumerable.Range(0, Levels).Select(level => (Volatile.Read(ref _busy[level]), _waiting[level].Count(w => !w.Completion.Task.IsCompleted)))];
    }

    /// <param name="level">0 = high, 1 = default, 2 = low.</param>
    public async ValueTask<IDisposable> AcquireAsync(int level, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            if (_free > 0 && _waiting.All(q => q.Count == 0))
            {
                _free--;
                _bypassed = 0;
                return new Slot(this, level);
            }
            waiter = new Waiter(_sequence++);
            _waiting[level].Enqueue(waiter);
        }

        await using (cancellationToken.Register(() => waiter.Completion.TrySetCanceled(cancellationToken)))
        {
            try
            {
                await waiter.Completion.Task;
                return new Slot(this, level);
            }
            catch (OperationCanceledException)
            {
                lock (_lock)
                {
                    // Granted just before the cancellation landed: hand the slot on.
                    if (waiter.Granted)
                        ReleaseLocked();
                }
                throw;
            }
        }
    }

    void Release()
    {
        lock (_lock)
            ReleaseLocked();
    }

    void ReleaseLocked()
    {
        _free++;
        while (_free > 0 && Next() is { } next)
        {
            next.Granted = true;
            if (next.Completion.TrySetResult())
                _free--;
            else
            {
                next.Granted = false; // cancelled meanwhile
            }
        }
    }

    Waiter? Next()
    {
        // Drop waiters whose acquisition was cancelled.
        foreach (var queue in _waiting)
        {
            while (queue.Count > 0 && queue.Peek().Completion.Task.IsCompleted)
                queue.Dequeue();
        }

        if (_bypassed >= _fairness)
        {
            Queue<Waiter>? oldest = null;
            foreach (var queue in _waiting)
            {
                if (queue.Count > 0 && (oldest is null || queue.Peek().Sequence < oldest.Peek().Sequence))
                    oldest = queue;
            }
            if (oldest is not null)
            {
                _bypassed = 0;
                return oldest.Dequeue();
            }
        }

        for (var level = 0; level < Levels; level++)
        {
            if (_waiting[level].Count == 0)
                continue;
            var passedOver = false;
            for (var lower = level + 1; lower < Levels; lower++)
                passedOver |= _waiting[lower].Count > 0;
            _bypassed = passedOver ? _bypassed + 1 : 0;
            return _waiting[level].Dequeue();
        }
        return null;
    }

    sealed class Waiter(long sequence)
    {
        public readonly long Sequence = sequence;
        public readonly TaskCompletionSource Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public bool Granted;
    }

    sealed class Slot : IDisposable
    {
        readonly PrioritySlots _owner;
        readonly int _level;
        int _released;

        public Slot(PrioritySlots owner, int level)
        {
            _owner = owner;
            _level = level;
            Interlocked.Increment(ref owner._busy[level]);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0)
                return;
            Interlocked.Decrement(ref _owner._busy[_level]);
            _owner.Release();
        }
    }
}
