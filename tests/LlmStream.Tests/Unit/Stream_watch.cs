using LlmStream.Sessions.Streams;

namespace LlmStream.Tests.Unit;

/// <summary>When a reader may write the token events pushed with a wake, and when it must read the store.</summary>
public sealed class Stream_watch
{
    readonly StreamSignals _signals = new();

    static StreamEntry[] Tokens(long ms, int from, int count) =>
        [.. Enumerable.Range(from, count).Select(i => new StreamEntry($"{ms}-{i}", StreamEventTypes.Token, $"{{\"text\":\"{i}\"}}"))];

    StreamWatch UpToDate(string session)
    {
        var watch = _signals.WatchAsync(session).Result; // no wake source: ready at once
        Assert.That(watch.TakePushed("0"), Is.Null, "the first look reads the store");
        return watch;
    }

    [Test]
    public void Pushes_that_follow_on_from_the_reader_are_taken_whole_and_in_order()
    {
        using var watch = UpToDate("s");
        _signals.Push("s", "5-1", Tokens(5, 2, 3));
        _signals.Push("s", "5-4", Tokens(5, 5, 2));
        Assert.That(watch.TakePushed("5-1")!.Select(e => e.Id), Is.EqualTo(new[] { "5-2", "5-3", "5-4", "5-5", "5-6" }));
        Assert.That(watch.TakePushed("5-6"), Is.Empty, "nothing new");
    }

    [Test]
    public void Entries_the_reader_already_read_from_the_store_are_not_written_twice()
    {
        using var watch = UpToDate("s");
        _signals.Push("s", "5-1", Tokens(5, 2, 4));
        Assert.That(watch.TakePushed("5-3")!.Select(e => e.Id), Is.EqualTo(new[] { "5-4", "5-5" }));
    }

    [Test]
    public void A_reader_behind_the_pushed_entries_reads_the_store()
    {
        using var watch = UpToDate("s");
        _signals.Push("s", "5-3", Tokens(5, 4, 2));
        Assert.That(watch.TakePushed("5-1"), Is.Null);
    }

    [Test]
    public void A_missing_wake_between_two_pushes_sends_the_reader_to_the_store()
    {
        using var watch = UpToDate("s");
        _signals.Push("s", "5-1", Tokens(5, 2, 2));
        _signals.Push("s", "5-7", Tokens(5, 8, 2)); // 5-4 .. 5-7 never came
        Assert.That(watch.TakePushed("5-1"), Is.Null);
    }

    [Test]
    public void A_wake_without_data_sends_the_reader_to_the_store()
    {
        using var watch = UpToDate("s");
        _signals.Push("s", "5-1", Tokens(5, 2, 2));
        _signals.Notify("s"); // e.g. the done event
        Assert.That(watch.TakePushed("5-1"), Is.Null);
        Assert.That(watch.TakePushed("5-1"), Is.Empty, "one store read covers it");
    }

    [Test]
    public void A_reader_that_does_not_take_its_pushes_holds_a_bounded_number_then_reads_the_store()
    {
        using var watch = UpToDate("s");
        var next = 1;
        for (var i = 0; i < 100; i++, next += 10)
            _signals.Push("s", $"5-{next}", Tokens(5, next + 1, 10));
        Assert.That(watch.TakePushed("5-1"), Is.Null, $"more than {StreamWatch.MaxPushed} pushed entries are dropped");
    }

    [Test]
    public void Pushes_reach_only_the_readers_of_their_session()
    {
        using var watch = UpToDate("s");
        using var other = UpToDate("t");
        _signals.Push("s", "5-1", Tokens(5, 2, 1));
        Assert.That(other.TakePushed("5-1"), Is.Empty);
        Assert.That(watch.TakePushed("5-1"), Has.Count.EqualTo(1));
    }
}
