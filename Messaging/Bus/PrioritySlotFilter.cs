using MassTransit;

namespace LlmStream.Messaging.Bus;

/// <summary>
/// Holds a message of a priority queue until the process's shared <see cref="PrioritySlots"/> grant it a slot;
/// from then on it no longer counts as waiting.
/// </summary>
public sealed class PrioritySlotFilter(PrioritySlots slots, int level, string queue, IWaitingLedger waiting) : IFilter<ConsumeContext>
{
    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        using var slot = await slots.AcquireAsync(level, QueuePriority(context), context.CancellationToken);
        if (context.MessageId is { } messageId)
            await waiting.RemoveAsync(queue, messageId);
        await next.Send(context);
    }

    /// <summary>RabbitMQ's message priority (0–10, as the dispatcher set it); 0 on a transport without one.</summary>
    static int QueuePriority(ConsumeContext context) =>
        context.ReceiveContext.TryGetPayload<RabbitMqBasicConsumeContext>(out var rabbit) ? rabbit.Properties.Priority : 0;

    public void Probe(ProbeContext context) => context.CreateFilterScope("prioritySlots").Add("level", level);
}
