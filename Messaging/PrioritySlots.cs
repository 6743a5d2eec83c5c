using LlmStream.ServiceDefaults.Hosting;

namespace LlmStream.Messaging;

/// <summary>
/// The in-flight slots one worker process shares across its high, default and low queues. A free slot
/// goes to the highest level waiting, and within a level to the highest message priority (the broker's order,
/// kept for messages already delivered and waiting here), then the longest waiting; but after <c>fairness</c>
/// grants in a row that passed over a waiting lower-level message, the next slot goes to the longest waiting
/// message (<see cref="FairTurns"/>, when the order is chosen here): low work is never starved.
/// </summary>
public sealed class PrioritySlots
{
    public const int Levels = 3;

    readonly Lock _lock = new();
    // Few waiters per level (the prefetch beyond the slots): a scan finds the next one.
    readonly List<Waiter>[] _waiting = [[], [], []];
    int _free;
    long _sequence;
    bool _closed;

    public PrioritySlots(int slots, int fairness) : this(slots, new FairTurns(fairness))
    {
    }

    /// <param name="turns">
    /// The fairness rule, when the order is chosen here among delivered messages (RabbitMQ's prefetch). Null when the
    /// reader chooses it before delivery (Redis Streams reads no more than the free slots), so it is applied once.
    /// </param>
    public PrioritySlots(int slots, FairTurns? turns)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        _free = slots;
        _turns = turns;
        Capacity = slots;
    }

    readonly FairTurns? _turns;

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

    /// <summary>
    /// The process is stopping: no slot is granted any more, so nothing new starts. Once the running work has ended,
    /// the messages that were waiting for a slot are let go (their acquisition is cancelled), so that the broker hands
    /// them to another worker at once. Messages that arrive after that wait until the broker's own stop cancels them.
    /// </summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            if (_free == Capacity)
                LetWaitersGoLocked();
        }
    }

    public bool IsClosed
    {
        get { lock (_lock) return _closed; }
    }

    void LetWaitersGoLocked()
    {
        foreach (var waiters in _waiting)
        {
            foreach (var waiter in waiters)
                waiter.Completion.TrySetException(new WorkerStoppingException());
            waiters.Clear();
        }
    }

    /// <param name="level">0 = high, 1 = default, 2 = low.</param>
    public ValueTask<IDisposable> AcquireAsync(int level, CancellationToken cancellationToken) => AcquireAsync(level, 0, cancellationToken);

    /// <param name="level">0 = high, 1 = default, 2 = low.</param>
    /// <param name="priority">The message's priority within its queue (higher first).</param>
    public async ValueTask<IDisposable> AcquireAsync(int level, int priority, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            if (_free > 0 && !_closed && _waiting.All(q => q.Count == 0))
            {
                _free--;
                _turns?.CountStarts(1, passedOverLowerWork: false);
                return new Slot(this, level);
            }
            waiter = new Waiter(_sequence++, priority);
            _waiting[level].Add(waiter);
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
        if (_closed)
        {
            if (_free == Capacity)
                LetWaitersGoLocked();
            return;
        }
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
        foreach (var waiters in _waiting)
            waiters.RemoveAll(w => w.Completion.Task.IsCompleted);

        if (_turns?.IsDue == true)
        {
            List<Waiter>? oldestLevel = null;
            Waiter? oldest = null;
            foreach (var waiters in _waiting)
            {
                foreach (var waiter in waiters)
                {
                    if (oldest is null || waiter.Sequence < oldest.Sequence)
                        (oldest, oldestLevel) = (waiter, waiters);
                }
            }
            if (oldest is not null)
            {
                _turns.Given();
                oldestLevel!.Remove(oldest);
                return oldest;
            }
        }

        for (var level = 0; level < Levels; level++)
        {
            var waiters = _waiting[level];
            if (waiters.Count == 0)
                continue;
            var passedOver = false;
            for (var lower = level + 1; lower < Levels; lower++)
                passedOver |= _waiting[lower].Count > 0;
            _turns?.CountStarts(1, passedOver);
            var next = waiters[0];
            foreach (var waiter in waiters)
            {
                if (waiter.Priority > next.Priority || (waiter.Priority == next.Priority && waiter.Sequence < next.Sequence))
                    next = waiter;
            }
            waiters.Remove(next);
            return next;
        }
        return null;
    }

    sealed class Waiter(long sequence, int priority)
    {
        public readonly long Sequence = sequence;
        public readonly int Priority = priority;
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
