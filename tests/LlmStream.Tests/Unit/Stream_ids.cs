using LlmStream.Sessions.Streams;

namespace LlmStream.Tests.Unit;

public sealed class Stream_ids
{
    [TestCase("0", true)]
    [TestCase("1718000000000-0", true)]
    [TestCase("1718000000000-12", true)]
    [TestCase("", false)]
    [TestCase("abc", false)]
    [TestCase("1-", false)]
    [TestCase("-1", false)]
    [TestCase("1-2-3", false)]
    [TestCase("+1-2", false)]
    [TestCase("99999999999999999999999-0", false)]
    public void Parse_only_real_entry_ids(string value, bool valid) =>
        Assert.That(StreamId.TryParse(value, out _), Is.EqualTo(valid));

    [Test]
    public void Order_by_time_then_sequence()
    {
        Assert.That(StreamId.Parse("5-10").CompareTo(StreamId.Parse("6-0")), Is.LessThan(0));
        Assert.That(StreamId.Parse("5-10").CompareTo(StreamId.Parse("5-9")), Is.GreaterThan(0));
        Assert.That(StreamId.Parse("5-1").CompareTo(StreamId.Parse("5-1")), Is.Zero);
    }
}
