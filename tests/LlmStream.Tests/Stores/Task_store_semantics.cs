using System.Text.Json;
using LlmStream.ServiceDefaults.Tasks;
using LlmStream.Tests.Infrastructure;
using StackExchange.Redis;

namespace LlmStream.Tests.Stores;

/// <summary>The same rules for the Redis store and the single-process store.</summary>
[TestFixture("redis")]
[TestFixture("in-process")]
public sealed class Task_store_semantics(string kind)
{
    RedisServer? _redis;
    ConnectionMultiplexer? _connection;
    StreamSignals _signals = null!;
    ITaskStore _store = null!;

    [OneTimeSetUp]
    public async Task StartRedis()
    {
        if (kind == "redis")
        {
            _redis = await RedisServer.StartAsync();
            _connection = await _redis.ConnectAsync();
        }
    }

    [SetUp]
    public void CreateStore()
    {
        _signals = new StreamSignals();
        _store = kind == "redis"
            ? new RedisTaskStore(_connection!, TimeSpan.FromHours(1))
            : new InProcessTaskStore(_signals, TimeProvider.System, TimeSpan.FromHours(1));
    }

    [OneTimeTearDown]
    public async Task StopRedis()
    {
        _connection?.Dispose();
        if (_redis is not null)
            await _redis.DisposeAsync();
    }

    static TaskRecord NewTask(string session) => new()
    {
        TaskId = Guid.NewGuid().ToString("N"),
        SessionId = session,
        State = TaskState.Queued,
        Model = "m",
        Priority = 3,
        CreatedAt = DateTimeOffset.UtcNow,
    };

    [Test]
    public async Task A_task_streams_queued_started_tokens_and_one_terminal_event()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        Assert.That(await _store.CreateAsync(task, StreamEvents.Queued(task.TaskId, "m", 3, "default"), default), Is.EqualTo(CreateResult.Created));
        var attempt = await _store.StartAttemptAsync(task.TaskId, session, default);
        Assert.That(attempt, Is.EqualTo(1));
        Assert.That(await _store.AppendTokensAsync(task.TaskId, session, 1,
            [StreamEvents.Token(task.TaskId, 1, "Hel"), StreamEvents.Token(task.TaskId, 1, "lo")], default), Is.True);
        var outcome = new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = TaskState.Completed, Attempt = 1, Result = "Hello", FinishReason = "stop", Usage = new TokenUsage(1, 2, 3) };
        Assert.That(await _store.FinishAsync(outcome, StreamEvents.Done(task.TaskId, 1, "stop", new TokenUsage(1, 2, 3)), default), Is.True);
        Assert.That(await _store.FinishAsync(outcome with { State = TaskState.Failed }, StreamEvents.Error(task.TaskId, 1, "late"), default), Is.False,
            "a task ends once");

        var entries = await _store.ReadAsync(session, "0", 100, default);
        Assert.That(entries.Select(e => e.Type), Is.EqualTo(new[] { "queued", "started", "token", "token", "done" }));
        Assert.That(entries.Select(e => StreamId.Parse(e.Id)), Is.Ordered);
        var record = await _store.GetAsync(task.TaskId, default);
        Assert.That(record!.State, Is.EqualTo(TaskState.Completed));
        Assert.That(record.Result, Is.EqualTo("Hello"));
        Assert.That(record.Usage, Is.EqualTo(new TokenUsage(1, 2, 3)));
        Assert.That(record.Priority, Is.EqualTo(3));
        Assert.That((await _store.LastAsync(session, default))!.Type, Is.EqualTo("done"));
    }

    [Test]
    public async Task Reading_after_an_id_returns_exactly_the_later_entries()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        await _store.StartAttemptAsync(task.TaskId, session, default);
        for (var i = 0; i < 10; i++)
            await _store.AppendTokensAsync(task.TaskId, session, 1, [StreamEvents.Token(task.TaskId, 1, i.ToString(System.Globalization.CultureInfo.InvariantCulture))], default);

        var all = await _store.ReadAsync(session, "0", 100, default);
        Assert.That(all, Has.Count.EqualTo(12));
        var rest = await _store.ReadAsync(session, all[4].Id, 100, default);
        Assert.That(rest.Select(e => e.Id), Is.EqualTo(all.Skip(5).Select(e => e.Id)));
        var page = await _store.ReadAsync(session, all[4].Id, 3, default);
        Assert.That(page.Select(e => e.Id), Is.EqualTo(all.Skip(5).Take(3).Select(e => e.Id)));
        Assert.That(await _store.ReadAsync(session, all[^1].Id, 100, default), Is.Empty);
    }

    [Test]
    public async Task A_new_attempt_fences_off_the_previous_one()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, default), Is.EqualTo(1));
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, default), Is.EqualTo(2));
        Assert.That(await _store.AppendTokensAsync(task.TaskId, session, 1, ["{}"], default), Is.False, "attempt 1 is stale");
        Assert.That(await _store.AppendTokensAsync(task.TaskId, session, 2, ["{}"], default), Is.True);
        var stale = new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = TaskState.Completed, Attempt = 1 };
        Assert.That(await _store.FinishAsync(stale, "{}", default), Is.False, "a stale attempt cannot finish the task");
        var started = (await _store.ReadAsync(session, "0", 100, default)).Where(e => e.Type == "started").ToList();
        Assert.That(started.Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("attempt").GetInt32()), Is.EqualTo(new[] { 1, 2 }));
    }

    [Test]
    public async Task A_finished_task_is_never_started_again()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        await _store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = TaskState.Failed, Error = "x" }, "{}", default);
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, default), Is.Null);
        Assert.That(await _store.StartAttemptAsync("unknown", session, default), Is.Null);
        Assert.That(await _store.CreateAsync(task, "{}", default), Is.EqualTo(CreateResult.DuplicateTask), "ids are unique");
    }

    [Test]
    public async Task A_session_takes_a_new_task_only_once_its_running_one_has_ended()
    {
        var session = Guid.NewGuid().ToString("N");
        var first = NewTask(session);
        Assert.That(await _store.CreateAsync(first, "{}", default), Is.EqualTo(CreateResult.Created));
        Assert.That(await _store.CreateAsync(NewTask(session), "{}", default), Is.EqualTo(CreateResult.SessionBusy));
        await _store.FinishAsync(new TaskOutcome { TaskId = first.TaskId, SessionId = session, State = TaskState.Cancelled }, "{}", default);
        Assert.That(await _store.CreateAsync(NewTask(session), "{}", default), Is.EqualTo(CreateResult.Created));
        Assert.That((await _store.ReadAsync(session, "0", 10, default)).Select(e => e.Type), Is.EqualTo(new[] { "queued", "cancelled", "queued" }));
    }

    [Test]
    public async Task Appends_wake_the_readers_of_that_session_only()
    {
        var session = Guid.NewGuid().ToString("N");
        var other = Guid.NewGuid().ToString("N");
        using var watch = _signals.Watch(session);
        using var otherWatch = _signals.Watch(other);
        // With Redis, wake-ups travel over the one pub/sub subscription a gateway holds.
        var subscription = kind == "redis" ? await RedisWakeSubscriberHost.StartAsync(_connection!, _signals) : null;
        try
        {
            var task = NewTask(session);
            await _store.CreateAsync(task, "{}", default);
            Assert.That(await watch.WaitAsync(TimeSpan.FromSeconds(10), default), Is.True);
            Assert.That(await otherWatch.WaitAsync(TimeSpan.FromMilliseconds(300), default), Is.False);
        }
        finally
        {
            if (subscription is not null)
                await subscription.DisposeAsync();
        }
    }
}

/// <summary>Runs the gateway's wake-up subscription outside a host, for store specs.</summary>
public sealed class RedisWakeSubscriberHost : IAsyncDisposable
{
    readonly RedisWakeSubscriber _subscriber;

    RedisWakeSubscriberHost(IConnectionMultiplexer redis, StreamSignals signals) => _subscriber = new RedisWakeSubscriber(redis, signals);

    public static async Task<RedisWakeSubscriberHost> StartAsync(IConnectionMultiplexer redis, StreamSignals signals)
    {
        var host = new RedisWakeSubscriberHost(redis, signals);
        await host._subscriber.StartAsync(default);
        return host;
    }

    public async ValueTask DisposeAsync() => await _subscriber.StopAsync(default);
}
