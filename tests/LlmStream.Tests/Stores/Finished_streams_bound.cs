using LlmStream.Sessions;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Tests.Stores;

/// <summary>
/// The single-process store holds at most MAX_FINISHED_STREAMS finished sessions: past it the oldest finished go, with
/// their streams and task records; running sessions and sessions that went on are never dropped for it.
/// </summary>
public sealed class Finished_streams_bound
{
    InProcessTaskStore _store = null!;

    [SetUp]
    public void CreateStore() => _store = new InProcessTaskStore(new StreamSignals(null), TimeProvider.System, TimeSpan.FromHours(1), maxFinished: 3);

    async Task<TaskRecord> Create(string session)
    {
        var task = new TaskRecord
        {
            TaskId = SessionShards.NewTaskId(session), SessionId = session, State = TaskState.Queued, Model = "m", CreatedAt = DateTimeOffset.UtcNow,
        };
        Assert.That(await _store.CreateAsync(task, "{}", default), Is.EqualTo(CreateResult.Created));
        return task;
    }

    async Task Finish(TaskRecord task)
    {
        await _store.StartAttemptAsync(task.TaskId, task.SessionId, null, 0, default);
        Assert.That(await _store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = task.SessionId, State = TaskState.Completed, Result = "a" }, "{}", default), Is.True);
    }

    [Test]
    public async Task The_oldest_finished_sessions_go_first_and_running_ones_stay()
    {
        var running = await Create(SessionShards.NewId(0));
        var finished = new List<TaskRecord>();
        for (var i = 0; i < 5; i++)
        {
            var task = await Create(SessionShards.NewId(i % SessionShards.Count));
            await Finish(task);
            finished.Add(task);
        }

        Assert.That(_store.FinishedStreams, Is.EqualTo((3, 3)));
        foreach (var gone in finished.Take(2))
        {
            Assert.That(await _store.GetAsync(gone.TaskId, default), Is.Null, "the two oldest finished went");
            Assert.That(await _store.LastAsync(gone.SessionId, default), Is.Null, "with their streams");
        }
        foreach (var kept in finished.Skip(2))
            Assert.That((await _store.GetAsync(kept.TaskId, default))!.State, Is.EqualTo(TaskState.Completed));
        Assert.That((await _store.GetAsync(running.TaskId, default))!.State, Is.EqualTo(TaskState.Queued), "a running session is not finished");
    }

    [Test]
    public async Task A_session_that_goes_on_is_counted_once_from_its_latest_end()
    {
        var session = SessionShards.NewId(5);
        var first = await Create(session);
        await Finish(first);
        Assert.That(_store.FinishedStreams.Held, Is.EqualTo(1));
        var second = await Create(session);
        Assert.That(_store.FinishedStreams.Held, Is.EqualTo(0), "it runs again");
        await Finish(second);

        // Three more sessions finish after it: it is the oldest end now and goes, whole.
        for (var i = 0; i < 3; i++)
            await Finish(await Create(SessionShards.NewId(i)));
        Assert.That(_store.FinishedStreams, Is.EqualTo((3, 3)));
        Assert.That(await _store.GetAsync(second.TaskId, default), Is.Null);
        Assert.That(await _store.GetAsync(first.TaskId, default), Is.Null);
    }

    [Test]
    public async Task Under_the_bound_nothing_is_dropped()
    {
        var session = SessionShards.NewId(1);
        var first = await Create(session);
        await Finish(first);
        var second = await Create(session);
        await Finish(second);
        var other = await Create(SessionShards.NewId(2));
        await Finish(other);
        Assert.That(_store.FinishedStreams, Is.EqualTo((2, 3)));
        Assert.That(await _store.GetAsync(first.TaskId, default), Is.Not.Null, "the session's first end was superseded, not dropped");
    }
}
