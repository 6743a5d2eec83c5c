using LlmStream.Messaging;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.Sessions;
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

    /// <summary>Up, or down with a trial due: a request now would be let through.</summary>
    public bool MayTry
    {
        get { lock (_lock) return _downSince is null || clock.GetUtcNow() >= _nextTrial; }
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

/// <summary>
/// The intake's two dependencies. The store's state follows the Redis client's connection as well as failures. On a
/// Redis Cluster the store is watched shard by shard (<see cref="SessionShards"/>): a dead master takes down only the work
/// of the shards it served until its replica takes over, and new sessions and batches are made in shards that answer.
/// </summary>
public sealed class Outages
{
    readonly IConnectionMultiplexer? _redis;
    readonly Outage[] _shards;

    public Outages(IServiceProvider services, ILoggerFactory loggers, TimeProvider clock)
    {
        var logger = loggers.CreateLogger<Outages>();
        Store = new Outage("The task store (Redis)", logger, clock);
        Broker = new Outage("The message broker", logger, clock);
        _shards = [.. Enumerable.Range(0, SessionShards.Count).Select(shard => new Outage($"The task store (Redis), shard {SessionShards.Tag(shard)},", logger, clock))];
        _redis = services.GetService<IConnectionMultiplexer>();
        if (_redis is not null)
        {
            // On a cluster a lost connection is one node of several: the failures of the shards it served tell.
            _redis.ConnectionFailed += (_, e) =>
            {
                if (e.ConnectionType == ConnectionType.Interactive && !IsCluster)
                    Store.GoDown(e.Exception?.GetBaseException().Message.Split('\n')[0] ?? e.FailureType.ToString());
            };
            _redis.ConnectionRestored += (_, e) =>
            {
                if (e.ConnectionType == ConnectionType.Interactive && _redis.IsConnected && !IsCluster)
                    Store.Succeeded();
            };
        }
    }

    bool IsCluster => _redis is not null && RedisTopology.IsCluster(_redis);

    /// <summary>The store as one Redis: the whole of it, or (on a Redis Cluster) see <see cref="StoreOf"/>.</summary>
    public Outage Store { get; }

    public Outage Broker { get; }

    /// <summary>The store where the data of <paramref name="id"/> (a session's, an embedding batch's) lives.</summary>
    public Outage StoreOf(string id) => IsCluster ? _shards[SessionShards.Of(id)] : Store;

    /// <summary>The store refuses while its client has no connection, or after a failure until a trial succeeds.</summary>
    public bool StoreRefuses(string id) => StoreOf(id).Refuses(knownDown: _redis is { IsConnected: false });

    /// <summary>
    /// A new session or batch id (<see cref="SessionShards.NewId"/>), in a shard that is up or due for its trial when
    /// there is one: a shard known down gets one new session per trial interval, which tells when it is back.
    /// </summary>
    public string NewId()
    {
        if (!IsCluster)
            return SessionShards.NewId(Random.Shared.Next(SessionShards.Count));
        var up = Enumerable.Range(0, SessionShards.Count).Where(shard => _shards[shard].MayTry).ToList();
        return SessionShards.NewId(up.Count > 0 ? up[Random.Shared.Next(up.Count)] : Random.Shared.Next(SessionShards.Count));
    }

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
