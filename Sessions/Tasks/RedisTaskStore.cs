using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Telemetry;
using System.Globalization;
using System.Text.Json;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Streams;
using StackExchange.Redis;
using StreamEntry = LlmStream.Sessions.Streams.StreamEntry;

namespace LlmStream.Sessions.Tasks;

/// <summary>
/// Task records are hashes, sessions are Redis streams; every change that touches both runs as one Lua
/// script, and each stream append is published on the session's own wake channel (sharded pub/sub: only gateways
/// with a reader of that session hear it). A task, its session's stream, its session's wake channel, the running set
/// and the counters it touches share their session's shard (<see cref="SessionShards"/>), so each script stays in one
/// slot of a Redis Cluster.
/// </summary>
/// <param name="replicas">With REDIS_WAIT_REPLICAS, a task's creation, the start of each attempt and its end wait for the replicas.</param>
/// <param name="compact">Each attempt's token events are stored in a few entries once the task ends (<see cref="CompactedTokens"/>).</param>
public sealed class RedisTaskStore(IConnectionMultiplexer redis, TimeSpan retention, RedisTaskCounters? counters = null, RedisReplicaWait? replicas = null,
    bool compact = true) : ITaskStore
{
    public static RedisKey TaskKey(string taskId) => $"llmstream:{SessionShards.TagOf(taskId)}:task:{taskId}";

    /// <summary>The tasks of one shard a worker has started and that have not ended, scored by when their current attempt started.</summary>
    static RedisKey Running(string tag) => $"llmstream:{tag}:running";

    static RedisKey RunningOf(string taskId) => Running(SessionShards.TagOf(taskId));

    public static RedisKey StreamKey(string sessionId) => $"llmstream:{SessionShards.TagOf(sessionId)}:stream:{sessionId}";

    /// <summary>The session's task ids in the order they were created (the last <see cref="TaskStoreLimits.TurnsKept"/>): its memory's index.</summary>
    public static RedisKey TurnsKey(string sessionId) => $"llmstream:{SessionShards.TagOf(sessionId)}:turns:{sessionId}";

    /// <summary>A task can be of a session only in its shard (<see cref="CreateAsync"/> refuses others): any other pair is unknown.</summary>
    static bool CanBelong(string taskId, string sessionId) => SessionShards.Of(taskId) == SessionShards.Of(sessionId);

    // KEYS: the task, the session's stream and its turns. ARGV: retention, the queued event's data, the wake channel,
    // the task id, the turns kept, then the task's fields.
    const string CreateScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
        local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
        if last then
          local t = last[2][2]
          if t ~= 'done' and t ~= 'error' and t ~= 'cancelled' then return 'busy' end
        end
        redis.call('HSET', KEYS[1], unpack(ARGV, 6))
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        local id = redis.call('XADD', KEYS[2], '*', 't', 'queued', 'd', ARGV[2])
        redis.call('HSET', KEYS[1], 'stream_start', id)
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        redis.call('RPUSH', KEYS[3], ARGV[4])
        redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
        redis.call('EXPIRE', KEYS[3], ARGV[1])
        redis.call('SPUBLISH', ARGV[3], '')
        return id
        """;

    // Every start counts an attempt: attempt 0 means no worker has started the task (TaskStoreOutcomes.WithdrawAsync).
    // The attempt's worker and its start go on record for the orphan check (OrphanedTasks).
    const string StartScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if not state then return -1 end
        if state ~= 'queued' and state ~= 'started' then return 0 end
        local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
        local started = redis.call('XADD', KEYS[2], '*', 't', 'started', 'd', ARGV[4] .. attempt .. '}')
        redis.call('HSET', KEYS[1], 'state', 'started', 'started_at', ARGV[2], 'worker', ARGV[5], 'history_turns', ARGV[7], 'stream_from', started)
        redis.call('ZADD', KEYS[3], ARGV[2], ARGV[6])
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        redis.call('SPUBLISH', ARGV[3], '')
        return attempt
        """;

    // KEYS: the task and stream key of each append, in pairs. ARGV: per append its attempt, the session's wake channel,
    // the number of events, then the events. Each session's wake message carries its stored events with the id before
    // them (see WakeMessage), so gateways write them to their clients without reading them back.
    const string AppendScript = """
        local stored = {}
        local a = 1
        for k = 1, #KEYS, 2 do
          local count = tonumber(ARGV[a + 2])
          local task = redis.call('HMGET', KEYS[k], 'state', 'attempt')
          if task[1] == 'started' and task[2] == ARGV[a] then
            local last = redis.call('XREVRANGE', KEYS[k + 1], '+', '-', 'COUNT', 1)[1]
            local wake = { '#', last and last[1] or '0', count }
            for i = a + 3, a + 2 + count do
              wake[#wake + 1] = redis.call('XADD', KEYS[k + 1], '*', 't', 'token', 'd', ARGV[i])
              wake[#wake + 1] = ARGV[i]
            end
            redis.call('SPUBLISH', ARGV[a + 1], table.concat(wake, '\n'))
            stored[#stored + 1] = 1
          else
            stored[#stored + 1] = 0
          end
          a = a + 3 + count
        end
        return stored
        """;

    // KEYS: the task, the stream, the running set, then (when counting) the outcome's counters (RedisTaskCounters.Keys).
    // ARGV: retention, event type and data, the session's wake channel, the attempt and the worker it must still be at
    // ('' for any), the task id, '1' to compact the attempt's tokens, then fields.
    static readonly string FinishScript = $$"""
        {{CompactedTokens.CompactLua}}
        local task = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'worker', 'stream_from')
        if not task[1] then return -1 end
        if task[1] == 'completed' or task[1] == 'failed' or task[1] == 'cancelled' then return 0 end
        if ARGV[5] ~= '' and task[2] ~= ARGV[5] then return 0 end
        if ARGV[6] ~= '' and task[3] ~= ARGV[6] then return 0 end
        redis.call('HSET', KEYS[1], unpack(ARGV, 9))
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        if ARGV[8] == '1' and task[4] then compact(KEYS[2], task[4]) end
        redis.call('XADD', KEYS[2], '*', 't', ARGV[2], 'd', ARGV[3])
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        redis.call('ZREM', KEYS[3], ARGV[7])
        redis.call('SPUBLISH', ARGV[4], '')
        {{RedisTaskCounters.IncrementLua(4)}}
        return 1
        """;

    IDatabase Db => redis.GetDatabase();

    string Ttl => ((long)retention.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    public async Task<CreateResult> CreateAsync(TaskRecord task, string queuedEventData, CancellationToken cancellationToken)
    {
        if (!CanBelong(task.TaskId, task.SessionId))
            throw new ArgumentException($"task {task.TaskId} is not in the shard of its session {task.SessionId}: make its id with SessionShards.NewTaskId", nameof(task));
        var args = new List<RedisValue> { Ttl, queuedEventData, WakeChannel.ForSession(task.SessionId), task.TaskId, TaskStoreLimits.TurnsKept };
        args.AddRange(
        [
            "state", task.State.ToWire(),
            "session", task.SessionId,
            "model", task.Model,
            "priority", task.Priority,
            "attempt", task.Attempt,
            "created_at", task.CreatedAt.ToUnixTimeMilliseconds(),
        ]);
        if (task.UserId is not null)
            args.AddRange(["user", task.UserId]);
        if (task.ApiKeyName is not null)
            args.AddRange(["api_key", task.ApiKeyName]);
        if (task.Message is not null)
            args.AddRange(["message", task.Message]);
        if (task.Response is not null)
            args.AddRange(["response", task.Response]);

        var result = (string?)await Db.ScriptEvaluateAsync(CreateScript, [TaskKey(task.TaskId), StreamKey(task.SessionId), TurnsKey(task.SessionId)], [.. args]);
        if (result is not ("duplicate" or "busy") && replicas is not null)
            await replicas.ReplicatedAsync(TaskKey(task.TaskId));
        return result switch
        {
            "duplicate" => CreateResult.DuplicateTask,
            "busy" => CreateResult.SessionBusy,
            _ => CreateResult.Created,
        };
    }

    public async Task<int?> StartAttemptAsync(string taskId, string sessionId, string? workerId, int historyTurns, CancellationToken cancellationToken)
    {
        if (!CanBelong(taskId, sessionId))
            return null;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var result = (long)await Db.ScriptEvaluateAsync(StartScript, [TaskKey(taskId), StreamKey(sessionId), RunningOf(taskId)],
            [Ttl, now, WakeChannel.ForSession(sessionId), StreamEvents.StartedPrefix(taskId), workerId ?? "", taskId, historyTurns]);
        if (result > 0 && replicas is not null)
            await replicas.ReplicatedAsync(TaskKey(taskId));
        return result > 0 ? (int)result : null;
    }

    public async Task<bool[]> AppendTokensAsync(IReadOnlyList<TokenAppend> appends, CancellationToken cancellationToken)
    {
        if (appends.Any(a => !CanBelong(a.TaskId, a.SessionId)))
        {
            // Unknown pairs store nothing; the others go on.
            var known = appends.Where(a => CanBelong(a.TaskId, a.SessionId)).ToList();
            var stored = known.Count == 0 ? [] : await AppendTokensAsync(known, cancellationToken);
            var next = 0;
            return [.. appends.Select(a => CanBelong(a.TaskId, a.SessionId) && stored[next++])];
        }
        if (RedisTopology.IsCluster(redis))
            return await AppendByShardAsync(appends);
        return await AppendAsync(appends);
    }

    /// <summary>A Redis Cluster takes one slot per script: the appends go in one call per shard, all at once.</summary>
    async Task<bool[]> AppendByShardAsync(IReadOnlyList<TokenAppend> appends)
    {
        var stored = new bool[appends.Count];
        var groups = Enumerable.Range(0, appends.Count).GroupBy(i => SessionShards.Of(appends[i].SessionId)).ToList();
        if (groups.Count == 1)
            return await AppendAsync(appends);
        await Task.WhenAll(groups.Select(async group =>
        {
            var indexes = group.ToArray();
            var results = await AppendAsync([.. indexes.Select(i => appends[i])]);
            for (var j = 0; j < indexes.Length; j++)
                stored[indexes[j]] = results[j];
        }));
        return stored;
    }

    async Task<bool[]> AppendAsync(IReadOnlyList<TokenAppend> appends)
    {
        var keys = new RedisKey[appends.Count * 2];
        var args = new List<RedisValue>(appends.Count * 4);
        for (var i = 0; i < appends.Count; i++)
        {
            var append = appends[i];
            keys[2 * i] = TaskKey(append.TaskId);
            keys[2 * i + 1] = StreamKey(append.SessionId);
            args.Add(append.Attempt);
            args.Add(WakeChannel.ForSession(append.SessionId));
            args.Add(append.EventData.Count);
            foreach (var data in append.EventData)
                args.Add(data);
        }
        var results = (RedisResult[])(await Db.ScriptEvaluateAsync(AppendScript, keys, [.. args]))!;
        var stored = new bool[appends.Count];
        for (var i = 0; i < stored.Length; i++)
            stored[i] = (long)results[i] == 1;
        return stored;
    }

    public async Task<bool> FinishAsync(TaskOutcome outcome, string terminalEventData, CancellationToken cancellationToken)
    {
        if (!CanBelong(outcome.TaskId, outcome.SessionId))
            return false;
        var args = new List<RedisValue>
        {
            Ttl, outcome.State.TerminalEvent(), terminalEventData, WakeChannel.ForSession(outcome.SessionId),
            outcome.Attempt?.ToString(CultureInfo.InvariantCulture) ?? "", outcome.Worker ?? "", outcome.TaskId, compact ? "1" : "",
            "state", outcome.State.ToWire(),
            "finished_at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        };
        if (outcome.Result is not null) args.AddRange(["result", outcome.Result]);
        if (outcome.Error is not null) args.AddRange(["error", outcome.Error]);
        if (outcome.Failure is not null) args.AddRange(["failure", JsonSerializer.Serialize(outcome.Failure, StreamEvents.Json)]);
        if (outcome.FinishReason is not null) args.AddRange(["finish_reason", outcome.FinishReason]);
        if (outcome.Usage is not null) args.AddRange(["usage", JsonSerializer.Serialize(outcome.Usage, StreamEvents.Json)]);
        if (outcome.ToolCalls is not null) args.AddRange(["tool_calls", outcome.ToolCalls]);

        RedisKey[] keys = [TaskKey(outcome.TaskId), StreamKey(outcome.SessionId), RunningOf(outcome.TaskId),
            .. counters?.Keys(LlmStreamMetrics.Chat, outcome.State.ToWire(), SessionShards.TagOf(outcome.TaskId)) ?? []];
        var result = (long)await Db.ScriptEvaluateAsync(FinishScript, keys, [.. args]);
        if (result == 1 && replicas is not null)
            await replicas.ReplicatedAsync(TaskKey(outcome.TaskId));
        if (result == 1)
            counters?.Counted(LlmStreamMetrics.Chat, outcome.State.ToWire());
        return result == 1;
    }

    // Only an ended task: a running one would be recreated field by field by its worker's HSETs, without a TTL.
    const string DeleteScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if state ~= 'completed' and state ~= 'failed' and state ~= 'cancelled' then return 0 end
        return redis.call('DEL', KEYS[1])
        """;

    public async Task<bool> DeleteAsync(string taskId, CancellationToken cancellationToken) =>
        (long)await Db.ScriptEvaluateAsync(DeleteScript, [TaskKey(taskId)]) == 1;

    public async Task<TaskRecord?> GetAsync(string taskId, CancellationToken cancellationToken) =>
        Parse(taskId, await Db.HashGetAllAsync(TaskKey(taskId)));

    public async Task<IReadOnlyList<TaskRecord>> EarlierTasksAsync(string sessionId, string taskId, int skip, int count, CancellationToken cancellationToken)
    {
        if (count <= 0)
            return [];
        var ids = (await Db.ListRangeAsync(TurnsKey(sessionId))).Select(id => id.ToString()).ToList();
        var index = ids.IndexOf(taskId);
        // Only ids CreateAsync wrote are here, each in the session's shard.
        var earlier = (index < 0 ? ids : ids.Take(index)).SkipLast(skip).TakeLast(count).ToList();
        // The records of one session share its slot: one round trip for all of them.
        var batch = Db.CreateBatch();
        var reads = earlier.Select(id => batch.HashGetAllAsync(TaskKey(id))).ToList();
        batch.Execute();
        var records = await Task.WhenAll(reads);
        return [.. earlier.Select((id, i) => Parse(id, records[i])).OfType<TaskRecord>()];
    }

    static TaskRecord? Parse(string taskId, HashEntry[] entries)
    {
        if (entries.Length == 0)
            return null;
        var f = entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString());
        return new TaskRecord
        {
            TaskId = taskId,
            SessionId = f["session"],
            State = TaskStates.FromWire(f["state"]),
            Model = f["model"],
            Priority = int.Parse(f["priority"], CultureInfo.InvariantCulture),
            UserId = f.GetValueOrDefault("user"),
            ApiKeyName = f.GetValueOrDefault("api_key"),
            Message = f.GetValueOrDefault("message"),
            Response = f.GetValueOrDefault("response"),
            StreamStart = f.GetValueOrDefault("stream_start"),
            HistoryTurns = f.TryGetValue("history_turns", out var turns) ? int.Parse(turns, CultureInfo.InvariantCulture) : 0,
            Attempt = int.Parse(f["attempt"], CultureInfo.InvariantCulture),
            CreatedAt = FromMs(f["created_at"]),
            StartedAt = f.TryGetValue("started_at", out var started) ? FromMs(started) : null,
            FinishedAt = f.TryGetValue("finished_at", out var finished) ? FromMs(finished) : null,
            Result = f.GetValueOrDefault("result"),
            Error = f.GetValueOrDefault("error"),
            Failure = f.TryGetValue("failure", out var failure) ? JsonSerializer.Deserialize<FailureDetail>(failure, StreamEvents.Json) : null,
            FinishReason = f.GetValueOrDefault("finish_reason"),
            Usage = f.TryGetValue("usage", out var usage) ? JsonSerializer.Deserialize<TokenUsage>(usage, StreamEvents.Json) : null,
            RateLimitedUntil = f.TryGetValue("rate_limited_until", out var limited) ? FromMs(limited) : null,
            ToolCalls = f.GetValueOrDefault("tool_calls"),
            Worker = f.GetValueOrDefault("worker"),
        };
    }

    /// <summary>Tasks whose current attempt started before <paramref name="before"/> and that have not ended, oldest first in each shard.</summary>
    public async Task<IReadOnlyList<string>> StartedBeforeAsync(DateTimeOffset before, int count)
    {
        var db = Db;
        var shards = await Task.WhenAll(SessionShards.AllTags.Select(tag =>
            db.SortedSetRangeByScoreWithScoresAsync(Running(tag), double.NegativeInfinity, before.ToUnixTimeMilliseconds(), take: count)));
        return [.. shards.SelectMany(s => s).OrderBy(e => e.Score).Take(count).Select(e => e.Element.ToString())];
    }

    /// <summary>Takes a task off the running set (it ended, or its record expired).</summary>
    public Task ForgetRunningAsync(string taskId) => Db.SortedSetRemoveAsync(RunningOf(taskId), taskId);

    // Only on a task that still exists: HSET on an expired hash would recreate it without fields or TTL.
    const string SetRateLimitedScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'rate_limited_until')
        else redis.call('HSET', KEYS[1], 'rate_limited_until', ARGV[1]) end
        return 1
        """;

    public Task SetRateLimitedUntilAsync(string taskId, DateTimeOffset? until, CancellationToken cancellationToken) =>
        Db.ScriptEvaluateAsync(SetRateLimitedScript, [TaskKey(taskId)],
            [until is { } u ? u.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) : ""]);

    public async Task<IReadOnlyList<StreamEntry>> ReadAsync(string sessionId, string afterId, int count, CancellationToken cancellationToken)
    {
        // "(" makes the start exclusive (Redis 6.2+): exactly the entries after the last one seen.
        var start = afterId == "0" ? "-" : "(" + afterId;
        var entries = await Db.StreamRangeAsync(StreamKey(sessionId), start, "+", count);
        var after = StreamId.Parse(afterId);
        var result = new List<StreamEntry>(entries.Length);
        foreach (var entry in entries)
        {
            string type = entry["t"]!;
            if (type == CompactedTokens.Type)
                CompactedTokens.Expand(entry["d"]!, after, result, count); // up to count: the next page starts at the next token
            else
                result.Add(new StreamEntry(entry.Id!, type, entry["d"]!));
            if (result.Count >= count)
                break;
        }
        return result;
    }

    static RedisKey IdempotencyKey(string scope, string key) => $"llmstream:idempotency:{scope}:{key}";

    public async Task<IdempotencyBinding?> BindIdempotencyKeyAsync(string scope, string key, IdempotencyBinding binding, CancellationToken cancellationToken)
    {
        var redisKey = IdempotencyKey(scope, key);
        if (await Db.StringSetAsync(redisKey, $"{binding.TaskId} {binding.SessionId} {binding.Fingerprint}", retention, When.NotExists))
            return null;
        return (string?)await Db.StringGetAsync(redisKey) switch
        {
            { } bound when bound.Split(' ') is [var task, var session, var fingerprint] => new IdempotencyBinding(task, session, fingerprint),
            { } bound when bound.Split(' ') is [var task, var session] => new IdempotencyBinding(task, session, ""), // bound before fingerprints
            _ => null, // expired between the two calls: treat as new
        };
    }

    public Task ReleaseIdempotencyKeyAsync(string scope, string key, CancellationToken cancellationToken) =>
        Db.KeyDeleteAsync(IdempotencyKey(scope, key));

    public async Task<StreamEntry?> LastAsync(string sessionId, CancellationToken cancellationToken)
    {
        var entries = await Db.StreamRangeAsync(StreamKey(sessionId), "-", "+", 1, Order.Descending);
        return entries.Length == 0 ? null : new StreamEntry(entries[0].Id!, entries[0]["t"]!, entries[0]["d"]!);
    }

    static DateTimeOffset FromMs(string value) =>
        DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(value, CultureInfo.InvariantCulture));
}
