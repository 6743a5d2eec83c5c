using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Hosting;

namespace LlmStream.Tests.Unit;

public sealed class Priority_slots
{
    [Test]
    public async Task Grant_free_slots_at_once_and_make_the_rest_wait()
    {
        var slots = new PrioritySlots(2, fairness: 10);
        using var a = await slots.AcquireAsync(2, default);
        using var b = await slots.AcquireAsync(2, default);
        var c = slots.AcquireAsync(0, default).AsTask();
        Assert.That(c.IsCompleted, Is.False);
        b.Dispose();
        Assert.That(await c.WaitAsync(TimeSpan.FromSeconds(5)), Is.Not.Null);
        Assert.That(slots.InUse, Is.EqualTo(2));
    }

    [Test]
    public async Task Give_a_freed_slot_to_the_highest_level_waiting()
    {
        var slots = new PrioritySlots(1, fairness: 10);
        var held = await slots.AcquireAsync(1, default);
        var order = new List<int>();
        var waiters = new[] { 2, 1, 0, 2, 0 }.Select(level => Waiter(slots, level, order)).ToList();
        held.Dispose();
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(order, Is.EqualTo(new[] { 0, 0, 1, 2, 2 }));
    }

    [Test]
    public async Task Within_a_level_give_a_freed_slot_to_the_highest_message_priority_then_the_oldest()
    {
        var slots = new PrioritySlots(1, fairness: 10);
        var held = await slots.AcquireAsync(0, default);
        var order = new List<(int Priority, int Arrival)>();
        var waiters = new[] { 1, 4, 2, 4, 0 }.Select((priority, arrival) => Acquired(slots, priority, arrival, order)).ToList();
        held.Dispose();
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(order, Is.EqualTo(new[] { (4, 1), (4, 3), (2, 2), (1, 0), (0, 4) }));

        static async Task Acquired(PrioritySlots slots, int priority, int arrival, List<(int, int)> order)
        {
            using var slot = await slots.AcquireAsync(0, priority, default);
            lock (order)
                order.Add((priority, arrival));
        }
    }

    [Test]
    public async Task Let_the_oldest_through_after_fairness_grants_passed_it_over()
    {
        var slots = new PrioritySlots(1, fairness: 3);
        var held = await slots.AcquireAsync(0, default);
        var order = new List<int>();
        var waiters = new List<Task> { Waiter(slots, 2, order) };
        waiters.AddRange(Enumerable.Range(0, 6).Select(_ => Waiter(slots, 0, order)));
        held.Dispose();
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(order, Is.EqualTo(new[] { 0, 0, 0, 2, 0, 0, 0 }));
    }

    [Test]
    public async Task Forget_a_waiter_whose_wait_was_cancelled()
    {
        var slots = new PrioritySlots(1, fairness: 10);
        var held = await slots.AcquireAsync(0, default);
        using var cts = new CancellationTokenSource();
        var cancelled = slots.AcquireAsync(0, cts.Token).AsTask();
        var next = slots.AcquireAsync(1, default).AsTask();
        await cts.CancelAsync();
        Assert.That(async () => await cancelled, Throws.InstanceOf<OperationCanceledException>());
        held.Dispose();
        using var granted = await next.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(slots.InUse, Is.EqualTo(1));
    }

    static async Task Waiter(PrioritySlots slots, int level, List<int> order)
    {
        using var slot = await slots.AcquireAsync(level, default);
        lock (order) order.Add(level);
        await Task.Yield();
    }
}

public sealed class Closing_priority_slots
{
    [Test]
    public async Task Start_nothing_new_and_let_the_waiting_go_once_the_running_have_ended()
    {
        var slots = new PrioritySlots(1, fairness: 10);
        var running = await slots.AcquireAsync(1, default);
        var waiting = slots.AcquireAsync(1, default).AsTask();

        slots.Close();
        Assert.That(waiting.IsCompleted, Is.False, "the running message may still finish: the waiting one is held, not let go");
        running.Dispose();
        Assert.That(async () => await waiting.WaitAsync(TimeSpan.FromSeconds(5)), Throws.InstanceOf<WorkerStoppingException>(),
            "the freed slot goes to nobody; the waiting message goes back to the broker");
        Assert.That(slots.InUse, Is.EqualTo(0));
    }

    [Test]
    public async Task Let_the_waiting_go_at_once_when_nothing_runs()
    {
        var slots = new PrioritySlots(1, fairness: 10);
        var running = await slots.AcquireAsync(0, default);
        var waiting = slots.AcquireAsync(0, default).AsTask();
        running.Dispose();
        (await waiting.WaitAsync(TimeSpan.FromSeconds(5))).Dispose(); // granted before the stop
        var late = slots.AcquireAsync(2, default).AsTask();
        Assert.That(late.IsCompleted, Is.True, "a free slot before the stop is granted");
        (await late).Dispose();

        var held = slots.AcquireAsync(0, CancellationToken.None);
        slots.Close();
        Assert.That(async () => await slots.AcquireAsync(0, new CancellationTokenSource(TimeSpan.FromMilliseconds(300)).Token),
            Throws.InstanceOf<OperationCanceledException>(), "after the stop a new arrival waits, even with every slot free, until the broker cancels it");
        (await held).Dispose();
    }
}
