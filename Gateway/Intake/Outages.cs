using LlmStream.Messaging;
using StackExchange.Redis;

namespace LlmStream.Gateway.Intake;

/// <summary>
/// One dependency of the intake (the task store or the broker) as this gateway sees it: known down from the first
/// failure until it works again. Meanwhile requests are refused at once instead of each waiting out a client timeout,
/// and the outage is logged twice: when it starts (with the reason, no stack trace) and when it ends, with the number
/// of requests refused in between.
/// </summary>
public sealed class Outage(string name, ILogger logger, TimeProvider clock)
{
    /// <summary>While down, one request at most this often is let through to find out whether it is back.</summary>
    public static readonly TimeSpan TrialInterval = TimeSpan.FromSeconds(2);

    readonly Lock _lock = new();
    DateTimeOffset? _downSince;
    DateTimeOffset _nextTrial;
    long _refused;

    public bool IsDown
    {
        get { lock (_lock) return _downSince is not null; }
    }

    /// <summary>
    /// True when the request is to be refused now (it is counted); false when it may go ahead: the dependency is up,
    /// or it is time for one trial. <paramref name="knownDown"/> adds what the client library knows (a lost connection).
    /// </summary>
    public bool Refuses(bool knownDown = false)
    {
        if (knownDown)
            GoDown("no connection");
        lock (_lock)
        {
            if (_downSince is null)
                return false;
            var now = clock.GetUtcNow();
            if (!knownDown && now >= _nextTrial)
            {
                _nextTrial = now + TrialInterval;
                return false;
            }
            _refused++;
            return true;
        }
    }

    public void Failed(Exception e) => GoDown(e.GetBaseException().Message.Split('\n')[0]);

    public void GoDown(string reason)
    {
        lock (_lock)
        {
            if (_downSince is not null)
                return;
            _downSince = clock.GetUtcNow();
            _nextTrial = _downSince.Value + TrialInterval;
            _refused = 0;
        }
        logger.LogWarning("{Dependency} unavailable ({Reason}): new work is refused with 503 until it is back", name, reason);
    }

    public void Succeeded()
    {
        DateTimeOffset since;
        long refused;
        lock (_lock)
        {
            if (_downSince is not { } down)
                return;
            (since, refused) = (down, _refused);
            _downSince = null;
        }
        logger.LogInformation("{Dependency} available again after {Seconds:0.0} s; {Refused} requests were refused meanwhile",
            name, (clock.GetUtcNow() - since).TotalSeconds, refused);
    }
}

/// <summary>The intake's two dependencies. The store's state follows the Redis client's connection as well as failures.</summary>
public sealed class Outages
{
    readonly IConnectionMultiplexer? _redis;

    public Outages(IServiceProvider services, ILoggerFactory loggers, TimeProvider clock)
    {
        var logger = loggers.CreateLogger<Outages>();
        Store = new Outage("The task store (Redis)", logger, clock);
        Broker = new Outage("The message broker", logger, clock);
        _redis = services.GetService<IConnectionMultiplexer>();
        if (_redis is not null)
        {
            _redis.ConnectionFailed += (_, e) =>
            {
                if (e.ConnectionType == ConnectionType.Interactive)
                    Store.GoDown(e.Exception?.GetBaseException().Message.Split('\n')[0] ?? e.FailureType.ToString());
            };
            _redis.ConnectionRestored += (_, e) =>
            {
                if (e.ConnectionType == ConnectionType.Interactive && _redis.IsConnected)
                    Store.Succeeded();
            };
        }
    }

    public Outage Store { get; }

    public Outage Broker { get; }

    /// <summary>The store refuses while its client has no connection, or after a failure until a trial succeeds.</summary>
    public bool StoreRefuses() => Store.Refuses(knownDown: _redis is { IsConnected: false });

    /// <summary>A trial send to a broker known to be down waits this long for its confirm, not the usual 10 s.</summary>
    public static readonly TimeSpan TrialSendTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Sends through the dispatcher, keeping <see cref="Broker"/> up to date.</summary>
    public async Task DispatchAsync<T>(IWorkDispatcher dispatcher, T message, WorkAddress address) where T : class
    {
        using var trial = Broker.IsDown ? new CancellationTokenSource(TrialSendTimeout) : null;
        try
        {
            await dispatcher.DispatchAsync(message, address, trial?.Token ?? CancellationToken.None);
            Broker.Succeeded();
        }
        catch (OperationCanceledException e) when (trial?.IsCancellationRequested == true)
        {
            throw new BrokerUnavailableException($"the message broker is still down (no confirm within {TrialSendTimeout.TotalSeconds:0} s)", e);
        }
        catch (BrokerUnavailableException e)
        {
            Broker.Failed(e);
            throw;
        }
    }
}
