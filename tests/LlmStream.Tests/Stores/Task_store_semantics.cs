using LlmStream.Sessions;
using System.Text.Json;
using LlmStream.ChatWorker;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using StackExchange.Redis;

namespace LlmStream.Tests.Stores;

/// <summary>The same rules for the Redis store and the single-process store.</summary>
[TestFixture("redis")]
[TestFixture("redis-cluster")]
[TestFixture("in-process")]
public sealed class Task_store_semantics(string kind) : RedisOrInProcess(kind)
{
    StreamSignals _signals = null!;
    ITaskStore _store = null!;

    ITaskCounters _counters = null!;

    [SetUp]
    public void CreateStore()
    {
        _signals = new StreamSignals(IsRedis ? new RedisWakeSource(Connection!) : null);
        var counters = NewCounters();
        _counters = counters.Reader;
        _store = IsRedis
            ? new RedisTaskStore(Connection!, TimeSpan.FromHours(1), counters.Redis)
            : new InProcessTaskStore(_signals, TimeProvider.System, TimeSpan.FromHours(1), counters.InProcess);
    }

    static TaskRecord NewTask(string session) => new()
    {
        TaskId = SessionShards.NewTaskId(session),
        SessionId = session,
        State = TaskState.Queued,
        Model = "m",
        Priority = 3,
        CreatedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A task of its own new session, at its first attempt.</summary>
    async Task<TaskRecord> StartedTask()
    {
        var task = NewTask(Guid.NewGuid().ToString("N"));
        await _store.CreateAsync(task, "{}", default);
        await _store.StartAttemptAsync(task.TaskId, task.SessionId, null, 0, default);
        return task;
    }

    [Test]
    public async Task A_session_remembers_its_tasks_in_order_with_their_messages_answers_and_turns_sent()
    {
        var session = Guid.NewGuid().ToString("N");
        var tasks = new List<TaskRecord>();
        for (var i = 0; i < 4; i++)
        {
            var task = NewTask(session) with { Message = $"message {i}" };
            tasks.Add(task);
            Assert.That(await _store.CreateAsync(task, "{}", default), Is.EqualTo(CreateResult.Created));
            Assert.That(await _store.StartAttemptAsync(task.TaskId, session, "w", historyTurns: i, default), Is.EqualTo(1));
            var state = i == 2 ? TaskState.Failed : TaskState.Completed;
            Assert.That(await _store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = state, Result = state == TaskState.Completed ? $"answer {i}" : null },
                "{}", default), Is.True);
        }

        var earlier = await _store.EarlierTasksAsync(session, tasks[3].TaskId, 0, 10, default);
        Assert.That(earlier.Select(t => t.TaskId), Is.EqualTo(tasks.Take(3).Select(t => t.TaskId)), "the tasks before it, oldest first");
        Assert.That(earlier.Select(t => (t.Message, t.Result, t.State)), Is.EqualTo(new[]
        {
            ("message 0", "answer 0", TaskState.Completed), ("message 1", "answer 1", TaskState.Completed), ("message 2", (string?)null, TaskState.Failed),
        }));
        Assert.That((await _store.EarlierTasksAsync(session, tasks[3].TaskId, 0, 2, default)).Select(t => t.TaskId), Is.EqualTo(new[] { tasks[1].TaskId, tasks[2].TaskId }),
            "the latest of them when fewer are asked for");
        Assert.That((await _store.EarlierTasksAsync(session, tasks[3].TaskId, 2, 2, default)).Select(t => t.TaskId), Is.EqualTo(new[] { tasks[0].TaskId }),
            "the next page back, after the newest two");
        Assert.That(await _store.EarlierTasksAsync(session, tasks[0].TaskId, 0, 10, default), Is.Empty, "nothing before the first");
        Assert.That((await _store.GetAsync(tasks[3].TaskId, default))!.HistoryTurns, Is.EqualTo(3));
        Assert.That(await _store.EarlierTasksAsync(Guid.NewGuid().ToString("N"), tasks[3].TaskId, 0, 10, default), Is.Empty, "another session has none of them");
    }

    [Test]
    public async Task A_task_streams_queued_started_tokens_and_one_terminal_event()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        Assert.That(await _store.CreateAsync(task, StreamEvents.Queued(task.TaskId, "m", 3, "default"), default), Is.EqualTo(CreateResult.Created));
        var attempt = await _store.StartAttemptAsync(task.TaskId, session, null, 0, default);
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
    public async Task A_record_keeps_its_response_and_where_its_events_start_and_only_an_ended_one_is_deleted()
    {
        var session = Guid.NewGuid().ToString("N");
        var first = NewTask(session);
        await _store.CreateAsync(first, "{}", default);
        await _store.FinishAsync(new TaskOutcome { TaskId = first.TaskId, SessionId = session, State = TaskState.Completed, Result = "a" }, "{}", default);
        var task = NewTask(session) with { Response = """{"input":[{"role":"user","content":"hi"}],"background":true}""" };
        await _store.CreateAsync(task, StreamEvents.Queued(task.TaskId, "m", 3, "default"), default);

        var record = (await _store.GetAsync(task.TaskId, default))!;
        Assert.That(record.Response, Is.EqualTo(task.Response));
        var entries = await _store.ReadAsync(session, "0", 100, default);
        Assert.That(record.StreamStart, Is.EqualTo(entries.Single(e => e.Type == "queued" && e.Data.Contains(task.TaskId, StringComparison.Ordinal)).Id),
            "the id of its own queued event, after the session's earlier task");
        Assert.That((await _store.ReadAsync(session, StreamId.Parse(record.StreamStart!).Before().ToString(), 100, default))[0].Id, Is.EqualTo(record.StreamStart),
            "reading after the id before it starts at it");

        Assert.That(await _store.DeleteAsync(task.TaskId, default), Is.False, "a task that has not ended stays");
        await _store.FinishAsync(new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = TaskState.Cancelled }, StreamEvents.Cancelled(task.TaskId), default);
        Assert.That(await _store.DeleteAsync(task.TaskId, default), Is.True);
        Assert.That(await _store.GetAsync(task.TaskId, default), Is.Null);
        Assert.That(await _store.DeleteAsync(task.TaskId, default), Is.False, "once");
        Assert.That((await _store.EarlierTasksAsync(session, "later", 0, 10, default)).Select(t => t.TaskId), Is.EqualTo(new[] { first.TaskId }),
            "a deleted record is no turn");
    }

    [Test]
    public async Task Reading_after_an_id_returns_exactly_the_later_entries()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        await _store.StartAttemptAsync(task.TaskId, session, null, 0, default);
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

    /// <summary>
    /// Redis keeps a finished attempt's tokens in chunks (COMPACT_FINISHED_STREAMS): read from the start or resumed after
    /// any event, in pages of any size, the stream is the same events with the same ids and data as before it ended.
    /// </summary>
    [TestCase(TaskState.Completed)]
    [TestCase(TaskState.Cancelled)]
    public async Task A_finished_stream_reads_the_same_from_every_event_as_while_it_ran(TaskState end)
    {
        var session = Guid.NewGuid().ToString("N");
        var earlier = NewTask(session);
        await _store.CreateAsync(earlier, "{}", default);
        await _store.StartAttemptAsync(earlier.TaskId, session, null, 0, default);
        await _store.AppendTokensAsync(earlier.TaskId, session, 1, [StreamEvents.Token(earlier.TaskId, 1, "before")], default);
        await _store.FinishAsync(new TaskOutcome { TaskId = earlier.TaskId, SessionId = session, State = TaskState.Completed, Attempt = 1 }, StreamEvents.Done(earlier.TaskId, 1, "stop", null), default);
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        await _store.StartAttemptAsync(task.TaskId, session, null, 0, default);
        // Texts JSON must escape (line breaks, quotes, the field name itself), non-ASCII, and one longer than a chunk's bytes;
        // appended in calls of several tokens, some a few milliseconds apart, so ids differ in both parts.
        string[] odd = ["line\nbreak", "\"text\":", "été 🚀", "\n\ndata: x", new string('z', CompactedTokens.ChunkBytes + 10), "}", "<&>"];
        var texts = Enumerable.Range(0, 3 * CompactedTokens.ChunkTokens + 5).Select(i => i % 9 < odd.Length ? odd[i % 9] : $" t{i}").ToList();
        for (var i = 0; i < texts.Count; i += 4)
        {
            await _store.AppendTokensAsync(task.TaskId, session, 1, [.. texts.Skip(i).Take(4).Select(t => StreamEvents.Token(task.TaskId, 1, t))], default);
            if (i % 40 == 0)
                await Task.Delay(3);
        }
        var running = await _store.ReadAsync(session, "0", 10_000, default);
        Assert.That(running.Count(e => e.Type == StreamEventTypes.Token), Is.EqualTo(texts.Count + 1));

        var outcome = new TaskOutcome { TaskId = task.TaskId, SessionId = session, State = end, Attempt = end == TaskState.Completed ? 1 : null };
        Assert.That(await _store.FinishAsync(outcome, end == TaskState.Completed ? StreamEvents.Done(task.TaskId, 1, "stop", null) : StreamEvents.Cancelled(task.TaskId), default), Is.True);

        var finished = await _store.ReadAsync(session, "0", 10_000, default);
        Assert.That(finished.SkipLast(1).Select(e => (e.Id, e.Type, e.Data)), Is.EqualTo(running.Select(e => (e.Id, e.Type, e.Data))));
        Assert.That(finished[^1].Type, Is.EqualTo(end == TaskState.Completed ? StreamEventTypes.Done : StreamEventTypes.Cancelled));
        foreach (var pageSize in new[] { 1, 7, 256 })
        {
            for (var from = 0; from < finished.Count; from += pageSize == 1 ? 23 : 1)
            {
                var read = new List<LlmStream.Sessions.Streams.StreamEntry>();
                var after = from == 0 ? "0" : finished[from - 1].Id;
                while (true)
                {
                    var page = await _store.ReadAsync(session, after, pageSize, default);
                    Assert.That(page, Has.Count.LessThanOrEqualTo(pageSize));
                    if (page.Count == 0)
                        break;
                    read.AddRange(page);
                    after = page[^1].Id;
                }
                Assert.That(read.Select(e => (e.Id, e.Type, e.Data)), Is.EqualTo(finished.Skip(from).Select(e => (e.Id, e.Type, e.Data))),
                    $"resumed after event {from}, pages of {pageSize}");
            }
        }
        if (IsRedis)
        {
            var entries = await Connection!.GetDatabase().StreamLengthAsync(RedisTaskStore.StreamKey(session));
            Assert.That(entries, Is.LessThan(texts.Count / 4), "the finished attempt's tokens are kept in chunks");
        }
    }

    [Test]
    public async Task A_new_attempt_fences_off_the_previous_one()
    {
        var session = Guid.NewGuid().ToString("N");
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, null, 0, default), Is.EqualTo(1));
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, null, 0, default), Is.EqualTo(2));
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
        Assert.That(await _store.StartAttemptAsync(task.TaskId, session, null, 0, default), Is.Null);
        Assert.That(await _store.StartAttemptAsync("unknown", session, null, 0, default), Is.Null);
        Assert.That(await _store.CreateAsync(task, "{}", default), Is.EqualTo(CreateResult.DuplicateTask), "ids are unique");
    }

    [Test]
    public async Task Withdrawing_fails_a_task_no_worker_has_started_and_leaves_a_started_one_running()
    {
        var queued = NewTask(Guid.NewGuid().ToString("N"));
        await _store.CreateAsync(queued, "{}", default);
        Assert.That(await _store.WithdrawAsync(queued.TaskId, queued.SessionId, "not confirmed"), Is.True);
        Assert.That(await _store.StartAttemptAsync(queued.TaskId, queued.SessionId, null, 0, default), Is.Null, "a withdrawn task is never started");
        var withdrawn = await _store.GetAsync(queued.TaskId, default);
        Assert.That((withdrawn!.State, withdrawn.Error, withdrawn.Attempt), Is.EqualTo((TaskState.Failed, "not confirmed", 0)));
        var error = (await _store.ReadAsync(queued.SessionId, "0", 10, default)).Single(e => e.Type == "error");
        Assert.That(JsonDocument.Parse(error.Data).RootElement.TryGetProperty("attempt", out var attempt) ? attempt.ValueKind : JsonValueKind.Undefined,
            Is.AnyOf(JsonValueKind.Null, JsonValueKind.Undefined), "the error event names no attempt: none was made");

        var started = await StartedTask();
        Assert.That(await _store.WithdrawAsync(started.TaskId, started.SessionId, "not confirmed"), Is.False, "a worker has it: it was queued after all");
        Assert.That((await _store.GetAsync(started.TaskId, default))!.State, Is.EqualTo(TaskState.Started));
        Assert.That(await _store.AppendTokensAsync(started.TaskId, started.SessionId, 1, [StreamEvents.Token(started.TaskId, 1, "on")], default), Is.True);
    }

    [Test]
    public async Task A_task_is_counted_once_by_the_call_that_ends_it_and_is_seen_counted_as_soon_as_it_is_seen_ended()
    {
        var before = await _counters.ReadAsync("chat", DateTimeOffset.UtcNow);
        var completed = await StartedTask();
        var outcome = new TaskOutcome { TaskId = completed.TaskId, SessionId = completed.SessionId, State = TaskState.Completed, Attempt = 1, Result = "" };
        Assert.That(await _store.FinishAsync(outcome, "{}", default), Is.True);
        Assert.That(await _store.FinishAsync(outcome with { State = TaskState.Failed }, "{}", default), Is.False);
        var withdrawn = NewTask(Guid.NewGuid().ToString("N"));
        await _store.CreateAsync(withdrawn, "{}", default);
        Assert.That(await _store.WithdrawAsync(withdrawn.TaskId, withdrawn.SessionId, "not confirmed"), Is.True);
        Assert.That(await _store.WithdrawAsync(withdrawn.TaskId, withdrawn.SessionId, "not confirmed"), Is.False);

        // No wait: the count is written in the same step as the terminal state.
        var after = await _counters.ReadAsync("chat", DateTimeOffset.UtcNow);
        Assert.That((after.Completed - before.Completed, after.Failed - before.Failed, after.Cancelled - before.Cancelled), Is.EqualTo((1L, 1L, 0L)));
        Assert.That(after.LastMinute.Completed - before.LastMinute.Completed, Is.EqualTo(1));
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
    public async Task One_call_appends_the_tokens_of_several_attempts_and_refuses_a_stale_one_alone()
    {
        var (a, b, c) = (await StartedTask(), await StartedTask(), await StartedTask());
        await _store.StartAttemptAsync(b.TaskId, b.SessionId, null, 0, default); // b is at attempt 2: attempt 1 is stale

        var stored = await _store.AppendTokensAsync(
        [
            new TokenAppend(a.TaskId, a.SessionId, 1, [StreamEvents.Token(a.TaskId, 1, "a1"), StreamEvents.Token(a.TaskId, 1, "a2")]),
            new TokenAppend(b.TaskId, b.SessionId, 1, [StreamEvents.Token(b.TaskId, 1, "b1")]),
            new TokenAppend(c.TaskId, c.SessionId, 1, [StreamEvents.Token(c.TaskId, 1, "c1")]),
        ], default);

        Assert.That(stored, Is.EqualTo(new[] { true, false, true }));
        async Task<string[]> Tokens(TaskRecord task) => [.. (await _store.ReadAsync(task.SessionId, "0", 100, default))
            .Where(e => e.Type == "token").Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("text").GetString()!)];
        Assert.That(await Tokens(a), Is.EqualTo(new[] { "a1", "a2" }));
        Assert.That(await Tokens(b), Is.Empty);
        Assert.That(await Tokens(c), Is.EqualTo(new[] { "c1" }));
    }

    [Test]
    public async Task A_reader_up_to_date_gets_the_appended_tokens_with_the_wake_exactly_as_stored()
    {
        var (a, b) = (await StartedTask(), await StartedTask());
        using var watch = await _signals.WatchAsync(a.SessionId);
        var lastId = (await _store.LastAsync(a.SessionId, default))!.Id;
        Assert.That(watch.TakePushed(lastId), Is.Null, "the first look reads the store");

        // "\n\ndata:" in a token stays inside its one line of JSON, so it cannot break the wake message either.
        var text = new[] { "one", " two\n\ndata: x", " three" };
        await _store.AppendTokensAsync(
        [
            new TokenAppend(a.TaskId, a.SessionId, 1, [.. text.Select(t => StreamEvents.Token(a.TaskId, 1, t))]),
            new TokenAppend(b.TaskId, b.SessionId, 1, [StreamEvents.Token(b.TaskId, 1, "other session")]),
        ], default);
        var stored = await _store.ReadAsync(a.SessionId, lastId, 100, default);
        if (!IsRedis)
        {
            // In one process the readers share the store's memory: the wake carries no data and they read it.
            Assert.That(await watch.WaitAsync(TimeSpan.FromSeconds(10), default), Is.True);
            Assert.That(watch.TakePushed(lastId), Is.Null);
            return;
        }
        IReadOnlyList<LlmStream.Sessions.Streams.StreamEntry>? pushed = [];
        for (var i = 0; i < 100 && pushed is { Count: 0 }; i++)
        {
            Assert.That(await watch.WaitAsync(TimeSpan.FromSeconds(10), default), Is.True);
            pushed = watch.TakePushed(lastId);
        }

        Assert.That(pushed, Is.EqualTo(stored), "same ids, types and data as the stream holds");
        Assert.That(stored, Has.Count.EqualTo(3));

        // A reader that has not written the entries before these must read the store instead.
        await _store.AppendTokensAsync(a.TaskId, a.SessionId, 1, [StreamEvents.Token(a.TaskId, 1, " four")], default);
        Assert.That(await watch.WaitAsync(TimeSpan.FromSeconds(10), default), Is.True);
        Assert.That(watch.TakePushed(lastId), Is.Null);
    }

    /// <param name="merge">STREAM_MERGE_TOKENS: a stream's tokens that go in one call become one event, the text unchanged.</param>
    [TestCase(false)]
    [TestCase(true)]
    public async Task The_token_batcher_sends_many_streams_tokens_in_few_calls_in_each_streams_order(bool merge)
    {
        const int streams = 20, tokens = 50;
        var (messages, pushedTokens) = (0, 0);
        var tasks = new List<TaskRecord>();
        for (var i = 0; i < streams; i++)
            tasks.Add(await StartedTask());
        if (IsRedis)
        {
            foreach (var task in tasks)
            {
                await Connection!.GetSubscriber().SubscribeAsync(RedisChannel.Sharded(WakeChannel.ForSession(task.SessionId)), (_, message) =>
                {
                    var text = (string)message!;
                    if (!text.StartsWith('#'))
                        return;
                    Interlocked.Increment(ref messages);
                    Interlocked.Add(ref pushedTokens, text.Split("\"text\":").Length - 1);
                });
            }
        }
        var batcher = new TokenBatcher(_store, Microsoft.Extensions.Options.Options.Create(new ChatWorkerOptions { MergeTokens = merge }));
        var appenders = tasks.Select(t => batcher.Start(t.TaskId, t.SessionId, 1)).ToList();

        for (var i = 0; i < tokens; i++)
        {
            foreach (var appender in appenders)
                Assert.That(appender.Add($"{i} "), Is.True);
        }
        foreach (var appender in appenders)
            Assert.That(await appender.FlushAsync(), Is.True);

        var expected = string.Concat(Enumerable.Range(0, tokens).Select(i => $"{i} "));
        var events = 0;
        foreach (var task in tasks)
        {
            var stored = (await _store.ReadAsync(task.SessionId, "0", 1000, default)).Where(e => e.Type == "token").ToList();
            events += stored.Count;
            var text = string.Concat(stored.Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("text").GetString()));
            Assert.That(text, Is.EqualTo(expected));
        }
        // Added all at once, most tokens wait for the Redis call in flight: merged, they take far fewer events. (The
        // single-process store answers at once: no call is ever in flight there, so nothing merges.)
        Assert.That(events, merge && IsRedis ? Is.LessThan(streams * tokens / 4) : Is.EqualTo(streams * tokens));
        if (IsRedis)
        {
            for (var i = 0; i < 100 && Volatile.Read(ref pushedTokens) < events; i++)
                await Task.Delay(100);
            await Connection!.GetSubscriber().UnsubscribeAllAsync();
            Assert.That(pushedTokens, Is.EqualTo(events), "every token event went out with a wake");
            Assert.That(messages, Is.LessThan(streams * tokens / 4), "a session's tokens share a wake message");
            TestContext.Progress.WriteLine($"{streams * tokens} tokens in {messages} wake messages");
        }
    }

    [Test]
    public async Task Appends_wake_the_readers_of_that_session_only()
    {
        var session = Guid.NewGuid().ToString("N");
        var other = Guid.NewGuid().ToString("N");
        // With Redis, wake-ups travel on each session's own channel, subscribed while it is watched.
        using var watch = await _signals.WatchAsync(session);
        using var otherWatch = await _signals.WatchAsync(other);
        var task = NewTask(session);
        await _store.CreateAsync(task, "{}", default);
        Assert.That(await watch.WaitAsync(TimeSpan.FromSeconds(10), default), Is.True);
        Assert.That(await otherWatch.WaitAsync(TimeSpan.FromMilliseconds(300), default), Is.False);
    }

    [Test]
    public async Task A_sessions_wake_channel_is_subscribed_while_it_has_a_reader_here_and_only_then()
    {
        if (!IsRedis)
            Assert.Ignore("the single-process store wakes its readers directly");
        var session = Guid.NewGuid().ToString("N");
        var channel = WakeChannel.ForSession(session);
        // Asked of the master that holds the channel's slot: a cluster counts sharded subscribers per node.
        async Task<long> Subscribers()
        {
            var slot = Connection!.HashSlot(channel);
            var server = Connection.GetServers().First(s => !s.IsReplica
                && (s.ServerType != ServerType.Cluster || s.ClusterConfiguration!.GetBySlot(slot)!.EndPoint!.Equals(s.EndPoint)));
            var reply = (RedisResult[])(await server.ExecuteAsync("PUBSUB", "SHARDNUMSUB", channel))!;
            return (long)reply[1];
        }

        Assert.That(await Subscribers(), Is.Zero, "nobody reads it yet");
        var first = await _signals.WatchAsync(session);
        var second = await _signals.WatchAsync(session);
        Assert.That(await Subscribers(), Is.EqualTo(1), "one subscription for the process, however many readers");
        first.Dispose();
        Assert.That(await Subscribers(), Is.EqualTo(1), "a reader is left");
        second.Dispose();
        for (var i = 0; i < 50 && await Subscribers() > 0; i++)
            await Task.Delay(20);
        Assert.That(await Subscribers(), Is.Zero, "given up with its last reader");

        using var again = await _signals.WatchAsync(session);
        Assert.That(await Subscribers(), Is.EqualTo(1), "subscribed again for a new reader");
    }
}
