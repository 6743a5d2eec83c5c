using System.Collections.Concurrent;
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
