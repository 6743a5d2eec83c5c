namespace LlmStream.Messaging.Workers;

/// <summary>The slots of each kind of work this process runs: what its heartbeat reports.</summary>
public sealed class WorkerActivity
{
    readonly Lock _lock = new();
    readonly List<(WorkQueues Queues, PrioritySlots Slots)> _tracked = [];

    /// <summary>This process in the cluster's list of workers.</summary>
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";

    public void Track(WorkQueues queues, PrioritySlots slots)
    {
        lock (_lock)
            _tracked.Add((queues, slots));
    }

    /// <summary>The process is stopping: nothing new starts on any of its slots (see <see cref="PrioritySlots.Close"/>).</summary>
    public void CloseAll()
    {
        lock (_lock)
        {
            foreach (var (_, slots) in _tracked)
                slots.Close();
        }
    }

    /// <summary>Messages running now, across every kind of work.</summary>
    public int Running
    {
        get { lock (_lock) return _tracked.Sum(t => t.Slots.InUse); }
    }

    public IReadOnlyList<WorkLoad> Snapshot()
    {
        lock (_lock)
        {
            return [.. _tracked.Select(t =>
            {
                var load = t.Slots.Load();
                var queues = t.Queues.All.Select((queue, level) => new QueueLoad(queue, load[level].InFlight, load[level].Held)).ToList();
                return new WorkLoad(t.Queues.Work, t.Slots.Capacity, queues.Sum(q => q.InFlight), queues);
            })];
        }
    }
}

/// <summary>One kind of work in one process: its concurrency and what occupies it.</summary>
public sealed record WorkLoad(string Work, int Concurrency, int InFlight, IReadOnlyList<QueueLoad> Queues);

/// <summary>Messages of one queue running in a process, and those delivered to it but waiting for a slot.</summary>
public sealed record QueueLoad(string Queue, int InFlight, int Held);
