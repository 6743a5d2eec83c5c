using MassTransit;

namespace LlmStream.ServiceDefaults.Bus;

/// <summary>Holds a message of a priority queue until the process's shared <see cref="PrioritySlots"/> grant it a slot.</summary>
public sealed class PrioritySlotFilter(PrioritySlots slots, int level) : IFilter<ConsumeContext>
{
    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        using var slot = await slots.AcquireAsync(level, context.CancellationToken);
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("prioritySlots").Add("level", level);
}
