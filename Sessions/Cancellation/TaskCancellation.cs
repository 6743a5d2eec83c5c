using System.Collections.Concurrent;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace LlmStream.Sessions.Cancellation;

/// <summary>
/// Stops a running generation wherever it runs: the gateway marks the task cancelled in the store, then
/// signals here; the worker running it cancels its provider call. One Redis channel reaches every worker
/// process; in the single-process default the signal stays in process.
/// </summary>
public sealed class TaskCancellation(IConnectionMultiplexer? redis = null)
{
    public const string Channel = "llmstream:cancel";
    readonly ConcurrentDictionary<string, CancellationTokenSource> _running = new();

    /// <summary>While the returned registration lives, <see cref="Signal"/> for this task cancels its token.</summary>
    public Registration Register(string taskId)
    {
        var source = new CancellationTokenSource();
        _running[taskId] = source;
        return new Registration(this, taskId, source);
    }

    /// <summary>
    /// Cancels a task that has not ended. Marking it first fences its worker off (its next token is refused); the signal
    /// then stops the provider call. False when it had ended already.
    /// </summary>
    public Task<bool> CancelAsync(ITaskStore store, string taskId, string sessionId) =>
        SignalIfEndedAsync(taskId, store.FinishAsync(new TaskOutcome { TaskId = taskId, SessionId = sessionId, State = TaskState.Cancelled },
            StreamEvents.Cancelled(taskId), CancellationToken.None));

    /// <summary>
    /// Fails a task whose next attempt began after part of an answer was streamed (<see cref="FailureDetail.MidAnswer"/>),
    /// then signals, so that the retry stops at the provider instead of answering again unseen. False when it had ended.
    /// </summary>
    public Task<bool> FailMidAnswerAsync(ITaskStore store, string taskId, string sessionId) =>
        SignalIfEndedAsync(taskId, store.FailAsync(taskId, sessionId, FailureDetail.MidAnswer.Message!, failure: FailureDetail.MidAnswer));

    async Task<bool> SignalIfEndedAsync(string taskId, Task<bool> ending)
    {
        if (!await ending)
            return false;
        await SignalAsync(taskId);
        return true;
    }

    public async Task SignalAsync(string taskId)
    {
        Signal(taskId);
        if (redis is not null)
            await redis.GetSubscriber().PublishAsync(RedisChannel.Literal(Channel), taskId);
    }

    internal void Signal(string taskId)
    {
        if (_running.TryGetValue(taskId, out var source))
        {
            try { source.Cancel(); } catch (ObjectDisposedException) { }
        }
    }

    public sealed class Registration(TaskCancellation owner, string taskId, CancellationTokenSource source) : IDisposable
    {
        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            owner._running.TryRemove(new KeyValuePair<string, CancellationTokenSource>(taskId, source));
            source.Dispose();
        }
    }
}

/// <summary>Worker side: one subscription to the cancel channel per process.</summary>
public sealed class RedisCancelSubscriber(IConnectionMultiplexer redis, TaskCancellation cancellation) : IHostedService
{
    static readonly RedisChannel Channel = RedisChannel.Literal(TaskCancellation.Channel);

    public Task StartAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().SubscribeAsync(Channel, (_, taskId) => cancellation.Signal(taskId!));

    public Task StopAsync(CancellationToken cancellationToken) => redis.GetSubscriber().UnsubscribeAsync(Channel);
}
