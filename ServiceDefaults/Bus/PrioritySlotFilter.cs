using LlmStream.ServiceDefaults.Operations;
using MassTransit;

namespace LlmStream.ServiceDefaults.Bus;

/// <summary>
/// Holds a message of a priority queue until the process's shared <see cref="PrioritySlots"/> grant it a slot;
/// from then on it no longer counts as waiting.
/// </summary>
public sealed class PrioritySlotFilter(PrioritySlots slots, int level, string queue, IWaitingLedger waiting) : IFilter<ConsumeContext>
{
    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        using var slot = await slots.AcquireAsync(level, context.CancellationToken);
        if (context.MessageId is { } messageId)
            await waiting.RemoveAsync(queue, messageId);
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("prioritySlots").Add("level", level);
}
