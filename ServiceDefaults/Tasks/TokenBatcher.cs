using System.Runtime.ExceptionServices;

namespace LlmStream.ServiceDefaults.Tasks;

/// <summary>
/// Sends the new tokens of every generation in a worker process to the store together, with one store call in
/// flight: tokens that arrive meanwhile, from any stream, go out in the next call. An idle worker sends a token at
/// once; a busy one sends many streams' tokens in one round trip (and one wake message to the gateways) instead of
/// one per token. Each stream's tokens keep their order, since calls leave one after the other.
/// </summary>
public sealed class TokenBatcher(ITaskStore store)
{
    readonly Lock _lock = new();
    Dictionary<TokenAppender, List<string>> _pending = [];
    TaskCompletionSource _nextCall = new(TaskCreationOptions.RunContinuationsAsynchronously);
    bool _pumping;

    /// <summary>The appender of one attempt's tokens.</summary>
    public TokenAppender Start(string taskId, string sessionId, int attempt) => new(this, taskId, sessionId, attempt);

    /// <summary>Queues a token; the task completes once the call that carries it has ended (stored, refused or failed).</summary>
    internal Task Add(TokenAppender appender, string eventData)
    {
        lock (_lock)
        {
            if (!_pending.TryGetValue(appender, out var tokens))
                _pending[appender] = tokens = [];
            tokens.Add(eventData);
            if (!_pumping)
            {
                _pumping = true;
                _ = Task.Run(Pump);
            }
            return _nextCall.Task;
        }
    }

    async Task Pump()
    {
        while (true)
        {
            Dictionary<TokenAppender, List<string>> batch;
            TaskCompletionSource call;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _pumping = false;
                    return;
                }
                batch = _pending;
                call = _nextCall;
                _pending = [];
                _nextCall = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            var appenders = batch.Keys.ToArray();
            try
            {
                var stored = await store.AppendTokensAsync(
                    [.. appenders.Select(a => new TokenAppend(a.TaskId, a.SessionId, a.Attempt, batch[a]))], CancellationToken.None);
                for (var i = 0; i < appenders.Length; i++)
                {
                    if (!stored[i])
                        appenders[i].Stale = true;
                }
            }
            catch (Exception e)
            {
                var failure = ExceptionDispatchInfo.Capture(e);
                foreach (var appender in appenders)
                    appender.Failure = failure;
            }
            call.SetResult();
        }
    }
}

/// <summary>Appends one attempt's tokens to its session's stream through the worker's <see cref="TokenBatcher"/>.</summary>
public sealed class TokenAppender
{
    readonly TokenBatcher _batcher;
    Task _lastCall = Task.CompletedTask;

    internal TokenAppender(TokenBatcher batcher, string taskId, string sessionId, int attempt)
    {
        _batcher = batcher;
        TaskId = taskId;
        SessionId = sessionId;
        Attempt = attempt;
    }

    public string TaskId { get; }
    public string SessionId { get; }
    public int Attempt { get; }

    /// <summary>Set once the store refused a call's tokens: the attempt was cancelled or superseded.</summary>
    internal volatile bool Stale;

    /// <summary>Set when a call failed (Redis unreachable): the consumer sees it on its next add or flush.</summary>
    internal volatile ExceptionDispatchInfo? Failure;

    /// <summary>False once the store refused a batch: the attempt was cancelled or superseded.</summary>
    public bool Add(string eventData)
    {
        Failure?.Throw();
        if (Stale)
            return false;
        _lastCall = _batcher.Add(this, eventData);
        return true;
    }

    /// <summary>Waits until every token added so far is stored; false if the attempt is no longer current.</summary>
    public async Task<bool> FlushAsync()
    {
        await _lastCall;
        Failure?.Throw();
        return !Stale;
    }
}
