using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Embeddings;
using LlmStream.Sessions.Streams;

namespace LlmStream.Tests.Stores;

/// <summary>The same rules for the Redis embedding store and the single-process one.</summary>
[TestFixture("redis")]
[TestFixture("redis-cluster")]
[TestFixture("in-process")]
public sealed class Embedding_store_semantics(string kind) : RedisOrInProcess(kind)
{
    IEmbeddingStore _store = null!;
    ITaskCounters _counters = null!;

    [SetUp]
    public void CreateStore()
    {
        var counters = NewCounters();
        _counters = counters.Reader;
        _store = IsRedis
            ? new RedisEmbeddingStore(Connection!, TimeSpan.FromHours(1), counters.Redis)
            : new InProcessEmbeddingStore(new StreamSignals(), TimeProvider.System, TimeSpan.FromHours(1), counters.InProcess);
    }

    async Task<string> QueuedTask()
    {
        var taskId = Guid.NewGuid().ToString("N");
        Assert.That(await _store.CreateAsync(new EmbeddingTask { TaskId = taskId, Model = "m", Texts = 3, State = EmbeddingState.Queued, CreatedAt = DateTimeOffset.UtcNow }, default), Is.True);
        return taskId;
    }

    [Test]
    public async Task Withdrawing_fails_a_batch_no_worker_has_started_and_leaves_a_started_one_running()
    {
        var before = await _counters.ReadAsync("embeddings", DateTimeOffset.UtcNow);
        var queued = await QueuedTask();
        Assert.That(await _store.WithdrawAsync(queued, "not confirmed", default), Is.True);
        Assert.That(await _store.StartAsync(queued, [0], default), Is.Null, "a withdrawn batch is never started");
        var withdrawn = await _store.GetAsync(queued, default);
        Assert.That((withdrawn!.State, withdrawn.Error), Is.EqualTo((EmbeddingState.Failed, "not confirmed")));

        var started = await QueuedTask();
        Assert.That(await _store.StartAsync(started, [0], default), Is.Not.Null);
        Assert.That(await _store.WithdrawAsync(started, "not confirmed", default), Is.False, "a worker has it: it was queued after all");
        Assert.That((await _store.GetAsync(started, default))!.State, Is.EqualTo(EmbeddingState.Running));
        Assert.That(await _store.FinishAsync(started, EmbeddingState.Failed, "the model refused", default), Is.True, "its worker still ends it");
        Assert.That(await _store.WithdrawAsync(started, "not confirmed", default), Is.False, "an ended batch stays as it ended");

        // Each batch counted once, by the call that ended it, and seen at once.
        var after = await _counters.ReadAsync("embeddings", DateTimeOffset.UtcNow);
        Assert.That((after.Completed - before.Completed, after.Failed - before.Failed, after.LastMinute.Failed - before.LastMinute.Failed), Is.EqualTo((0L, 2L, 2L)));
        Assert.That((await _counters.ReadAsync("chat", DateTimeOffset.UtcNow)).Failed, Is.Zero, "embeddings count apart from chats");
    }
}
