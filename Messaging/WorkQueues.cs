using LlmStream.ServiceDefaults.Telemetry;

namespace LlmStream.Messaging;

/// <summary>
/// The three priority queues a kind of work travels on. Priority is an integer in [-10, 10]:
/// above 5 goes to the high queue, below -5 to the low queue, the rest to the default queue;
/// inside a queue a higher number goes first where the broker supports it (RabbitMQ x-max-priority).
/// </summary>
public sealed record WorkQueues(string Work, string High, string Default, string Low)
{
    public const int MinPriority = -10;
    public const int MaxPriority = 10;

    /// <summary>Broker-level priority levels per queue (RabbitMQ: classic queues only).</summary>
    public const byte MaxQueuePriority = 10;

    /// <summary>Chat generations: the names the original used, shown as such in the RabbitMQ UI.</summary>
    public static readonly WorkQueues Chat = new(LlmStreamMetrics.Chat, "high", "default", "low");

    public static readonly WorkQueues Embeddings = new(LlmStreamMetrics.Embeddings, "embeddings-high", "embeddings-default", "embeddings-low");

    public IReadOnlyList<string> All => [High, Default, Low];

    /// <summary>Every kind of work, for reports.</summary>
    public static IReadOnlyList<WorkQueues> Kinds => [Chat, Embeddings];

    public static readonly IReadOnlyList<string> PriorityNames = ["high", "default", "low"];

    public static bool IsValidPriority(int priority) => priority is >= MinPriority and <= MaxPriority;

    /// <summary>Reads a priority sent as text (the X-Priority header); the error names the header and the range.</summary>
    public static bool TryParsePriority(string text, string source, out int priority, out string? error)
    {
        if (int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out priority) && IsValidPriority(priority))
        {
            error = null;
            return true;
        }
        error = $"the {source} must be an integer between {MinPriority} and {MaxPriority}, not '{text}'";
        return false;
    }

    public string QueueFor(int priority) => priority > 5 ? High : priority < -5 ? Low : Default;

    /// <summary>Where a message of this priority goes: worked out once per request, and what the dispatcher sends to.</summary>
    public WorkAddress For(int priority) => new(this, QueueFor(priority), priority);

    /// <summary>Position inside the chosen queue: 0 is the lowest priority of that queue.</summary>
    public static byte QueuePriority(int priority) => (byte)(priority > 5 ? priority - 6 : priority < -5 ? priority + 10 : priority + 5);
}

/// <summary>A message's destination: its kind of work, the queue its priority selects, and the priority itself.</summary>
public readonly record struct WorkAddress(WorkQueues Queues, string Queue, int Priority)
{
    /// <summary>Position inside the queue (RabbitMQ's message priority).</summary>
    public byte QueuePriority => WorkQueues.QueuePriority(Priority);
}
