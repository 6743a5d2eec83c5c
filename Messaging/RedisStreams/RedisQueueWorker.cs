using System.Diagnostics;
using LlmStream.Messaging.Workers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using MassTransit.Mediator;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LlmStream.Messaging.RedisStreams;

/// <summary>
/// BROKER=redis: feeds one kind of work from its three Redis streams into MassTransit's Mediator, so the
/// consumers are the same classes as on RabbitMQ. Reads high, then default, then low, never more than its
/// free slots; reclaims a dead worker's entries before reading new ones; acknowledges only after the
/// consumer pipeline (with its retries) succeeded, and dead-letters what fails.
/// </summary>
internal sealed class RedisQueueWorker(
    WorkConsumers.Registration registration,
    RedisWorkQueue queue,
    IConnectionMultiplexer redis,
    IMediator mediator,
    IServiceProvider services,
    IOptions<QueueOptions> options,
    WorkerActivity activity,
    GracefulStop stop,
    ILogger<RedisQueueWorker> logger) : BackgroundService
{
    readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
    readonly SemaphoreSlim _wake = new(0, 1);
    readonly PrioritySlots _slots = Tracked(activity, registration.Queues, new PrioritySlots(registration.Concurrency, turns: null));
    // The fairness rule is applied here, to which stream is read next; the slots only bound the concurrency.
    readonly FairTurns _turns = new(options.Value.PriorityFairness);
    readonly HashSet<Task> _running = [];

    static PrioritySlots Tracked(WorkerActivity activity, WorkQueues queues, PrioritySlots slots)
    {
        activity.Track(queues, slots);
        return slots;
    }

    TimeSpan ClaimIdle => TimeSpan.FromSeconds(options.Value.RedisClaimIdleSeconds);

    /// <summary>
    /// The queues' consumer groups, retried every second while Redis cannot answer (down, or still loading a large
    /// append-only file after a restart): a worker started beside Redis waits for it instead of exiting.
    /// </summary>
    async Task EnsureGroupsAsync(IReadOnlyList<string> names, CancellationToken stoppingToken)
    {
        var logged = false;
        while (true)
        {
            try
            {
                foreach (var name in names)
                    await queue.EnsureGroupAsync(name);
                if (logged)
                    logger.LogInformation("Redis answers: reading the work queues");
                return;
            }
            catch (Exception e) when (e.IsRedisFailure())
            {
                if (!logged)
                    logger.LogWarning("Redis cannot serve the work queues yet ({Reason}); trying again every second", e.GetBaseException().Message);
                logged = true;
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var names = registration.Queues.All;
        await EnsureGroupsAsync(names, stoppingToken);
        var channel = RedisChannel.Literal(RedisWorkQueue.WakeChannel);
        await redis.GetSubscriber().SubscribeAsync(channel, (_, name) =>
        {
            if (names.Contains((string)name!)) Wake();
        });
        logger.LogInformation("Reading Redis streams {Queues} as {Consumer}", string.Join(", ", names), _consumer);

        var nextReclaim = DateTime.MinValue;
        // At SIGTERM nothing more is read: what was read and not started goes back (see Handle).
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, stop.Stopping);
        stoppingToken = reading.Token;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var free = _slots.Capacity - _slots.InUse - RunningNotYetHolding();
                var fetched = 0;
                if (free > 0)
                {
                    try
                    {
                        if (DateTime.UtcNow >= nextReclaim)
                        {
                            nextReclaim = DateTime.UtcNow + ClaimIdle / 2;
                            fetched += await Fetch(free, reclaim: true, stoppingToken);
                        }
                        if (free - fetched > 0)
                            fetched += await Fetch(free - fetched, reclaim: false, stoppingToken);
                    }
                    catch (Exception e) when (e.IsRedisFailure())
                    {
                        logger.LogWarning("Redis unavailable while reading work ({Reason}); trying again", e.Message);
                        await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                        continue;
                    }
                }

                if (fetched == 0)
                {
                    // Woken by a send, a finished message, or at the latest when a reclaim is due.
                    var wait = nextReclaim - DateTime.UtcNow;
                    await _wake.WaitAsync(wait < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : wait, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            await redis.GetSubscriber().UnsubscribeAsync(channel);
            Task[] running;
            lock (_running) running = [.. _running];
            // Running messages get SHUTDOWN_TIMEOUT to finish; then they are cut and handed back (see Handle).
            await Task.WhenAll(running);
        }
    }

    int _starting;

    int RunningNotYetHolding() => Volatile.Read(ref _starting);

    async Task<int> Fetch(int count, bool reclaim, CancellationToken stoppingToken)
    {
        var names = registration.Queues.All;
        // On a fair turn (PRIORITY_FAIRNESS reads in a row passed over lower-level work), read one message from the bottom.
        var fair = !reclaim && _turns.IsDue;
        int[] order = fair ? [2, 1, 0] : [0, 1, 2];

        var fetched = 0;
        var lowestLevelRead = -1;
        foreach (var level in order)
        {
            if (fetched >= count)
                break;
            var want = fair ? 1 : count - fetched;
            IReadOnlyList<QueueEntry> entries;
            if (reclaim)
            {
                var (claimed, dead) = await queue.ReclaimAsync(names[level], level, _consumer, ClaimIdle, want, options.Value.MaxDeliveries);
                foreach (var entry in dead)
                    await EndTask(entry, $"the message was delivered more than {options.Value.MaxDeliveries} times (MAX_DELIVERIES) and its workers stopped each time");
                entries = claimed;
            }
            else
            {
                entries = await queue.ReadNewAsync(names[level], level, _consumer, want);
            }
            foreach (var entry in entries)
            {
                if (reclaim)
                    logger.LogWarning("Reclaimed message {EntryId} from {Queue}: its worker went silent", entry.EntryId, entry.Queue);
                Start(entry, stoppingToken);
            }
            fetched += entries.Count;
            if (entries.Count > 0)
                lowestLevelRead = Math.Max(lowestLevelRead, level);
            if (fair && entries.Count > 0)
                break;
        }

        if (!reclaim && fetched > 0)
        {
            if (fair)
                _turns.Given();
            else
                _turns.CountStarts(fetched, await LowerWorkWaits(lowestLevelRead));
        }
        return fetched;
    }

    async Task<bool> LowerWorkWaits(int level)
    {
        var names = registration.Queues.All;
        for (var lower = level + 1; lower < names.Count; lower++)
        {
            if ((await queue.DepthAsync(names[lower])).Waiting > 0)
                return true;
        }
        return false;
    }

    void Start(QueueEntry entry, CancellationToken stoppingToken)
    {
        Interlocked.Increment(ref _starting);
        var task = Task.Run(() => Handle(entry, stoppingToken), CancellationToken.None);
        lock (_running) _running.Add(task);
        task.ContinueWith(t =>
        {
            lock (_running) _running.Remove(t);
            Wake();
        }, TaskScheduler.Default);
    }

    async Task Handle(QueueEntry entry, CancellationToken stoppingToken)
    {
        IDisposable slot;
        try
        {
            slot = await _slots.AcquireAsync(entry.Level, CancellationToken.None);
        }
        catch (WorkerStoppingException)
        {
            // Read but not started when the worker began to stop: another worker takes it.
            Interlocked.Decrement(ref _starting);
            await Release(entry);
            return;
        }
        using var held = slot;
        Interlocked.Decrement(ref _starting);
        using var activity = StartProcessActivity(entry);
        using var renewal = new CancellationTokenSource();
        var renewing = KeepClaim(entry, renewal.Token);
        var handBack = false;
        try
        {
            if (entry.Type != MessageBodies.TypeName(registration.MessageType))
                throw new UndecodableMessageException($"unknown message type '{entry.Type}' on queue '{entry.Queue}'");
            // The consume's token fires SHUTDOWN_TIMEOUT after SIGTERM: a generation still running then is cut.
            await registration.SendThroughMediator(mediator, entry.Body, stop.Expired);
        }
        catch (OperationCanceledException) when (stop.Expired.IsCancellationRequested)
        {
            logger.LogInformation("Message {EntryId} on {Queue} stopped with this worker; handed back for another", entry.EntryId, entry.Queue);
            handBack = true; // once the claim is no longer renewed (below)
        }
        catch (UndecodableMessageException e)
        {
            logger.LogError("Message {EntryId} on {Queue} cannot be decoded; dead-lettered: {Reason}", entry.EntryId, entry.Queue, e.Message);
            activity.Fail("undecodable message: " + e.Message);
            await DeadLetter(entry, "undecodable message: " + e.Message);
            return;
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // Redis itself failed: left pending, the message is delivered again (MAX_DELIVERIES still bounds it).
            logger.LogWarning("Message {EntryId} on {Queue} left pending, Redis failed: {Reason}", entry.EntryId, entry.Queue, e.Message);
            return;
        }
        catch (Exception e)
        {
            // The consumer already ended the task (failed) before giving up on the message.
            logger.LogError(e, "Message {EntryId} on {Queue} failed after its retries; dead-lettered", entry.EntryId, entry.Queue);
            activity.Fail(e.Message);
            await DeadLetter(entry, $"{e.GetType().Name}: {e.Message}");
            return;
        }
        finally
        {
            await renewal.CancelAsync();
            await renewing;
        }
        if (handBack)
        {
            await Release(entry);
            return;
        }

        // Outside the try: a failed acknowledgement must not dead-letter a message that succeeded.
        try
        {
            if (!await queue.AckAsync(entry, _consumer))
                logger.LogWarning("Message {EntryId} was taken over by another worker before its acknowledgement", entry.EntryId);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // Not acknowledged: delivered again later, and the consumer's idempotency makes that harmless.
            logger.LogWarning("Could not acknowledge {EntryId}: {Reason}", entry.EntryId, e.Message);
        }
    }

    /// <summary>
    /// The consume span, a child of the sender's span stored in the entry: the trace goes on from the gateway's
    /// request through MassTransit's Mediator and the consumer to the provider call.
    /// </summary>
    static Activity? StartProcessActivity(QueueEntry entry)
    {
        ActivityContext.TryParse(entry.TraceParent, null, isRemote: true, out var parent);
        var activity = LlmStreamTelemetry.Source.StartActivity($"{entry.Queue} process", ActivityKind.Consumer, parent);
        activity?.SetTag("messaging.system", "redis_streams");
        activity?.SetTag("messaging.destination.name", entry.Queue);
        activity?.SetTag("messaging.message.id", entry.MessageId);
        activity?.SetTag("llmstream.redis.entry_id", entry.EntryId);
        return activity;
    }

    async Task Release(QueueEntry entry)
    {
        try
        {
            await queue.ReleaseAsync(entry, _consumer);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // Left pending: reclaimed once it has been idle for REDIS_CLAIM_IDLE_SECONDS.
            logger.LogWarning("Could not hand back {EntryId}: {Reason}", entry.EntryId, e.Message);
        }
    }

    async Task DeadLetter(QueueEntry entry, string reason)
    {
        try
        {
            await queue.DeadLetterAsync(entry, reason, _consumer);
        }
        catch (Exception e) when (e.IsRedisFailure())
        {
            // Left pending: another delivery will follow, and MAX_DELIVERIES still bounds it.
            logger.LogError("Could not dead-letter {EntryId}: {Reason}", entry.EntryId, e.Message);
        }
    }

    /// <summary>A message that went to the dead letters without its consumer running to the end: its task ends too.</summary>
    async Task EndTask(QueueEntry entry, string reason)
    {
        logger.LogError("Message {EntryId} on {Queue} dead-lettered: {Reason}", entry.EntryId, entry.Queue, reason);
        if (registration.DeadLettered is null)
            return;
        try
        {
            await registration.DeadLettered(services, entry.Body, reason);
        }
        catch (Exception e) when (e is UndecodableMessageException || e.IsRedisFailure())
        {
            logger.LogError("The task of dead-lettered message {EntryId} could not be ended: {Reason}", entry.EntryId, e.Message);
        }
    }

    async Task KeepClaim(QueueEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(ClaimIdle / 3, cancellationToken);
                try
                {
                    if (!await queue.RenewAsync(entry, _consumer))
                    {
                        // The task store's attempt fencing keeps this worker from writing over the new owner.
                        logger.LogWarning("Message {EntryId} was taken over by another worker", entry.EntryId);
                        return;
                    }
                }
                catch (Exception e) when (e.IsRedisFailure())
                {
                    logger.LogWarning("Could not renew the claim on {EntryId}: {Reason}", entry.EntryId, e.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            try { _wake.Release(); } catch (SemaphoreFullException) { }
        }
    }
}
