using Microsoft.Extensions.Options;
using System.Runtime.ExceptionServices;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.ChatWorker;

/// <summary>
/// Sends the new tokens of every generation in a worker process to the store together, with one store call in
/// flight: tokens that arrive meanwhile, from any stream, go out in the next call. An idle worker sends a token at
/// once; a busy one sends many streams' tokens in one round trip (and one wake message to the gateways) instead of
/// one per token. Each stream's tokens keep their order, since calls leave one after the other.
/// </summary>
public sealed class TokenBatcher(ITaskStore store, IOptions<ChatWorkerOptions> options)
{
    readonly bool _merge = options.Value.MergeTokens;

    readonly Lock _lock = new();
    // Appenders with tokens waiting; two lists and each appender's two token lists are reused, call after call.
    List<TokenAppender> _waiting = [];
    List<TokenAppender> _spare = [];
    TaskCompletionSource _nextCall = new(TaskCreationOptions.RunContinuationsAsynchronously);
    bool _pumping;

    /// <summary>The appender of one attempt's tokens.</summary>
    public TokenAppender Start(string taskId, string sessionId, int attempt) => new(this, taskId, sessionId, attempt);

    /// <summary>Queues a token; the task completes once the call that carries it has ended (stored, refused or failed).</summary>
    internal Task Add(TokenAppender appender, string text)
    {
        Task call;
        bool startPump;
        lock (_lock)
        {
            appender.Waiting.Add(text);
            if (!appender.IsWaiting)
            {
                appender.IsWaiting = true;
                _waiting.Add(appender);
            }
            startPump = !_pumping;
            _pumping = true;
            call = _nextCall.Task;
        }
        // On an idle worker the token leaves from this thread at once: no hop to the thread pool before the store call.
        if (startPump)
            _ = Pump();
        return call;
    }

    async Task Pump()
    {
        while (true)
        {
            List<TokenAppender> batch;
            TaskCompletionSource call;
            lock (_lock)
            {
                if (_waiting.Count == 0)
                {
                    _pumping = false;
                    return;
                }
                batch = _waiting;
                _waiting = _spare;
                call = _nextCall;
                _nextCall = new(TaskCreationOptions.RunContinuationsAsynchronously);
                foreach (var appender in batch)
                {
                    (appender.Waiting, appender.Sending) = (appender.Sending, appender.Waiting);
                    appender.IsWaiting = false;
                }
            }
            try
            {
                var appends = new TokenAppend[batch.Count];
                for (var i = 0; i < appends.Length; i++)
                    appends[i] = new TokenAppend(batch[i].TaskId, batch[i].SessionId, batch[i].Attempt, batch[i].Events(_merge));
                var stored = await store.AppendTokensAsync(appends, CancellationToken.None);
                for (var i = 0; i < appends.Length; i++)
                {
                    if (!stored[i])
                        batch[i].Stale = true;
                }
            }
            catch (Exception e)
            {
                var failure = ExceptionDispatchInfo.Capture(e);
                foreach (var appender in batch)
                    appender.Failure = failure;
            }
            foreach (var appender in batch)
                appender.Sending.Clear(); // only this pump touches Sending
            batch.Clear();
            lock (_lock)
                _spare = batch;
            call.SetResult();
        }
    }
}

/// <summary>Appends one attempt's tokens to its session's stream through the worker's <see cref="TokenBatcher"/>.</summary>
public sealed class TokenAppender
{
    readonly TokenBatcher _batcher;
    Task _lastCall = Task.CompletedTask;

    readonly string _prefix;

    internal TokenAppender(TokenBatcher batcher, string taskId, string sessionId, int attempt)
    {
        _batcher = batcher;
        TaskId = taskId;
        SessionId = sessionId;
        Attempt = attempt;
        _prefix = StreamEvents.TokenPrefix(taskId, attempt);
    }

    /// <summary>The token events of the texts being sent: one each, or with <paramref name="merge"/> one for all of them.</summary>
    internal List<string> Events(bool merge)
    {
        if (merge && Sending.Count > 1)
            return [StreamEvents.Token(_prefix, string.Concat(Sending))];
        var events = new List<string>(Sending.Count);
        foreach (var text in Sending)
            events.Add(StreamEvents.Token(_prefix, text));
        return events;
    }

    public string TaskId { get; }
    public string SessionId { get; }
    public int Attempt { get; }

    // Texts waiting for the next call, and those in the call in flight (the batcher swaps the two).
    internal List<string> Waiting = [];
    internal List<string> Sending = [];
    internal bool IsWaiting;

    /// <summary>Set once the store refused a call's tokens: the attempt was cancelled or superseded.</summary>
    internal volatile bool Stale;

    /// <summary>Set when a call failed (Redis unreachable): the consumer sees it on its next add or flush.</summary>
    internal volatile ExceptionDispatchInfo? Failure;

    /// <summary>Queues a token's text; false once the store refused a batch: the attempt was cancelled or superseded.</summary>
    public bool Add(string text)
    {
        Failure?.Throw();
        if (Stale)
            return false;
        _lastCall = _batcher.Add(this, text);
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
