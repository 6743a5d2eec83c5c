using LlmStream.Messaging;

namespace LlmStream.Tests.Unit;

public sealed class Priority_queues
{
    [TestCase(10, "high")]
    [TestCase(6, "high")]
    [TestCase(5, "default")]
    [TestCase(0, "default")]
    [TestCase(-5, "default")]
    [TestCase(-6, "low")]
    [TestCase(-10, "low")]
    public void Map_priority_to_the_queue_the_original_used(int priority, string queue) =>
        Assert.That(WorkQueues.Chat.QueueFor(priority), Is.EqualTo(queue));

    [Test]
    public void Order_priorities_inside_each_queue_within_the_broker_range()
    {
        for (var p = WorkQueues.MinPriority; p < WorkQueues.MaxPriority; p++)
        {
            var here = WorkQueues.QueuePriority(p);
            Assert.That(here, Is.LessThanOrEqualTo(WorkQueues.MaxQueuePriority));
            if (WorkQueues.Chat.QueueFor(p) == WorkQueues.Chat.QueueFor(p + 1))
                Assert.That(WorkQueues.QueuePriority(p + 1), Is.GreaterThan(here), $"priority {p + 1} must go before {p}");
        }
    }

    [TestCase(-10, true)]
    [TestCase(10, true)]
    [TestCase(11, false)]
    [TestCase(-11, false)]
    public void Accept_only_minus_ten_to_ten(int priority, bool valid) =>
        Assert.That(WorkQueues.IsValidPriority(priority), Is.EqualTo(valid));
}
