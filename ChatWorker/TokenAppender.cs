using LlmStream.ServiceDefaults.Tasks;

namespace LlmStream.ChatWorker;

/// <summary>
/// Appends one attempt's tokens to the session stream with at most one store call in flight: tokens that
/// arrive meanwhile go out together in the next call. An idle stream sends each token at once; a fast one
/// costs far fewer round trips. Order is kept: batches leave one after the other.
/// </summary>
public sealed class TokenAppender(ITaskStore store, string taskId, string sessionId, int attempt)
{
    readonly Lock _lock = new();
    List<string> _pending = [];
    Task<bool>? _pump;
    bool _pumping; // set and cleared under the lock, so no token is left behind by a pump on its way out
    bool _stale;

    /// <summary>False once the store refused a batch: the attempt was cancelled or superseded.</summary>
    public bool Add(string eventData)
    {
        lock (_lock)
        {
            if (_stale)
                return false;
            if (_pump is { IsFaulted: true })
                _pump.GetAwaiter().GetResult(); // surfaces the store's failure to the consumer
            _pending.Add(eventData);
            if (!_pumping)
            {
                _pumping = true;
                _pump = Pump();
            }
            return true;
        }
    }

    /// <summary>Waits until every token added so far is stored; false if the attempt is no longer current.</summary>
    public async Task<bool> FlushAsync()
    {
        Task<bool>? pump;
        lock (_lock) pump = _pump;
        return pump is null || await pump;
    }

    async Task<bool> Pump()
    {
        await Task.Yield();
        while (true)
        {
            List<string> batch;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _pumping = false;
                    return !_stale;
                }
                batch = _pending;
                _pending = [];
            }
            bool stored;
            try
            {
                stored = await store.AppendTokensAsync(taskId, sessionId, attempt, batch, CancellationToken.None);
            }
            catch
            {
                lock (_lock) _pumping = false;
                throw;
            }
            if (!stored)
            {
                lock (_lock)
                {
                    _stale = true;
                    _pumping = false;
                    _pending.Clear();
                }
                return false;
            }
        }
    }
}
