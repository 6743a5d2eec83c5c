using LlmStream.ServiceDefaults.Telemetry;
using System.Globalization;
using LlmStream.Sessions.Counting;
using LlmStream.Sessions.Streams;
using StackExchange.Redis;

namespace LlmStream.Sessions.Embeddings;

/// <summary>
/// A batch is a hash (llmstream:{shard}:embedding:id); each chunk's vectors are one string key beside it, in the same
/// shard (<see cref="SessionShards"/>). A chunk is written in pieces of at most <see cref="PieceBytes"/> under a
/// temporary key and renamed into place by the script that records it, so no single command moves megabytes and a
/// reader never sees half a chunk.
/// </summary>
public sealed class RedisEmbeddingStore(IConnectionMultiplexer redis, TimeSpan retention, RedisTaskCounters? counters = null, RedisReplicaWait? replicas = null) : IEmbeddingStore
{
    public const int PieceBytes = 1 << 20;

    static string Prefix(string taskId) => $"llmstream:{SessionShards.TagOf(taskId)}:embedding:{taskId}";
    static RedisKey TaskKey(string taskId) => Prefix(taskId);
    static RedisKey ChunkKey(string taskId, int index) => $"{Prefix(taskId)}:chunk:{index}";

    IDatabase Db => redis.GetDatabase();

    string Ttl => ((long)retention.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    const string CreateScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('HSET', KEYS[1], unpack(ARGV, 2))
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    public async Task<bool> CreateAsync(EmbeddingTask task, CancellationToken cancellationToken)
    {
        var args = new List<RedisValue>
        {
            Ttl,
            "state", task.State.ToWire(), "model", task.Model, "texts", task.Texts, "priority", task.Priority,
            "attempt", 0, "chunks_total", 0, "chunks_done", 0, "prompt_tokens", 0,
            "created_at", task.CreatedAt.ToUnixTimeMilliseconds(),
        };
        if (task.RequestedDimensions is { } dimensions) args.AddRange(["requested_dimensions", dimensions]);
        if (task.ApiKeyName is not null) args.AddRange(["api_key", task.ApiKeyName]);
        var created = (long)await Db.ScriptEvaluateAsync(CreateScript, [TaskKey(task.TaskId)], [.. args]) == 1;
        if (created && replicas is not null)
            await replicas.ReplicatedAsync(TaskKey(task.TaskId));
        return created;
    }

    public async Task<EmbeddingTask?> GetAsync(string taskId, CancellationToken cancellationToken)
    {
        var entries = await Db.HashGetAllAsync(TaskKey(taskId));
        if (entries.Length == 0)
            return null;
        var f = new Dictionary<string, string>();
        foreach (var entry in entries)
        {
            var name = entry.Name.ToString();
            if (!name.StartsWith("chunk:", StringComparison.Ordinal) && name != "plan")
                f[name] = entry.Value.ToString();
        }
        int Int(string name) => int.Parse(f[name], CultureInfo.InvariantCulture);
        int? OptionalInt(string name) => f.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : null;
        DateTimeOffset? At(string name) => f.TryGetValue(name, out var v) ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(v, CultureInfo.InvariantCulture)) : null;
        return new EmbeddingTask
        {
            TaskId = taskId,
            Model = f["model"],
            Texts = Int("texts"),
            State = EmbeddingStates.FromWire(f["state"]),
            Priority = Int("priority"),
            RequestedDimensions = OptionalInt("requested_dimensions"),
            ApiKeyName = f.GetValueOrDefault("api_key"),
            CreatedAt = At("created_at")!.Value,
            StartedAt = At("started_at"),
            FinishedAt = At("finished_at"),
            Attempt = Int("attempt"),
            ChunksTotal = Int("chunks_total"),
            ChunksDone = Int("chunks_done"),
            Dimensions = OptionalInt("dimensions"),
            PromptTokens = Int("prompt_tokens"),
            Error = f.GetValueOrDefault("error"),
            Failure = f.TryGetValue("failure", out var failure) ? System.Text.Json.JsonSerializer.Deserialize<FailureDetail>(failure, StreamEvents.Json) : null,
        };
    }

    // Returns {attempt, plan, done chunk fields...}, or a number when the task has ended (0) or expired (-1).
    const string StartScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if not state then return -1 end
        if state == 'completed' or state == 'failed' or state == 'cancelled' then return 0 end
        local plan = redis.call('HGET', KEYS[1], 'plan')
        if not plan then
          plan = ARGV[1]
          redis.call('HSET', KEYS[1], 'plan', plan, 'chunks_total', ARGV[2], 'started_at', ARGV[3])
        end
        redis.call('HSET', KEYS[1], 'state', 'running')
        local result = { redis.call('HINCRBY', KEYS[1], 'attempt', 1), plan }
        for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
          if string.sub(field, 1, 6) == 'chunk:' then table.insert(result, field) end
        end
        return result
        """;

    public async Task<EmbeddingStart?> StartAsync(string taskId, IReadOnlyList<int> proposedPlan, CancellationToken cancellationToken)
    {
        var result = await Db.ScriptEvaluateAsync(StartScript, [TaskKey(taskId)],
            [string.Join(',', proposedPlan), proposedPlan.Count, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()]);
        if (result.Resp2Type != ResultType.Array)
            return null;
        var values = (RedisResult[])result!;
        var attempt = (int)values[0];
        var plan = ((string)values[1]!).Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var done = values.Skip(2).Select(v => int.Parse(((string)v!)["chunk:".Length..], CultureInfo.InvariantCulture)).ToHashSet();
        return new EmbeddingStart(plan, done, attempt);
    }

    const string SaveChunkScript = """
        if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
          redis.call('DEL', KEYS[2])
          return 0
        end
        if redis.call('HEXISTS', KEYS[1], 'chunk:' .. ARGV[2]) == 1 then
          redis.call('DEL', KEYS[2])
          return 1
        end
        redis.call('RENAME', KEYS[2], KEYS[3])
        redis.call('EXPIRE', KEYS[3], ARGV[1])
        redis.call('HSET', KEYS[1], 'chunk:' .. ARGV[2], ARGV[3], 'dimensions', ARGV[4])
        redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
        redis.call('HINCRBY', KEYS[1], 'prompt_tokens', ARGV[3])
        return 1
        """;

    public async Task<bool> SaveChunkAsync(string taskId, int index, EmbeddingChunk chunk, CancellationToken cancellationToken)
    {
        var bytes = EmbeddingChunkFormat.Encode(chunk);
        RedisKey partial = $"{Prefix(taskId)}:chunk:{index}:writing:{Guid.NewGuid():N}";
        var db = Db;
        // The first piece sets the expiry: a writer that dies half-way leaves nothing that outlives the retention.
        await db.StringSetAsync(partial, bytes.AsMemory(0, Math.Min(PieceBytes, bytes.Length)), retention);
        for (var offset = PieceBytes; offset < bytes.Length; offset += PieceBytes)
            await db.StringAppendAsync(partial, bytes.AsMemory(offset, Math.Min(PieceBytes, bytes.Length - offset)));
        return (long)await db.ScriptEvaluateAsync(SaveChunkScript, [TaskKey(taskId), partial, ChunkKey(taskId, index)],
            [Ttl, index, chunk.PromptTokens, chunk.Dimensions]) == 1;
    }

    // KEYS: the task, then (when counting) the outcome's counters (RedisTaskCounters.Keys). ARGV[6]: the state the
    // task must be in (a withdraw: queued), or ''.
    static readonly string FinishScript = $$"""
        local task = redis.call('HMGET', KEYS[1], 'state', 'chunks_done', 'chunks_total')
        if not task[1] then return -1 end
        if task[1] == 'completed' or task[1] == 'failed' or task[1] == 'cancelled' then return 0 end
        if ARGV[6] ~= '' and task[1] ~= ARGV[6] then return 0 end
        if ARGV[2] == 'completed' and (task[1] ~= 'running' or task[2] ~= task[3]) then return -2 end
        redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3])
        if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
        if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'failure', ARGV[7]) end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        redis.call('SPUBLISH', ARGV[5], '')
        {{RedisTaskCounters.IncrementLua(2)}}
        return 1
        """;

    public Task<bool> FinishAsync(string taskId, EmbeddingState state, string? error, CancellationToken cancellationToken, FailureDetail? failure = null) =>
        FinishAsync(taskId, state, error, onlyFrom: null, failure);

    public Task<bool> WithdrawAsync(string taskId, string error, CancellationToken cancellationToken) =>
        FinishAsync(taskId, EmbeddingState.Failed, error, onlyFrom: EmbeddingState.Queued);

    async Task<bool> FinishAsync(string taskId, EmbeddingState state, string? error, EmbeddingState? onlyFrom, FailureDetail? failure = null)
    {
        RedisKey[] keys = [TaskKey(taskId), .. counters?.Keys(LlmStreamMetrics.Embeddings, state.ToWire(), SessionShards.TagOf(taskId)) ?? []];
        var result = (long)await Db.ScriptEvaluateAsync(FinishScript, keys,
            [Ttl, state.ToWire(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), error ?? "", WakeChannel.Name(EmbeddingWake.Key(taskId), taskId), onlyFrom?.ToWire() ?? "",
                failure is null ? "" : System.Text.Json.JsonSerializer.Serialize(failure, StreamEvents.Json)]);
        if (result == -2)
            throw new InvalidOperationException($"embedding task {taskId} cannot complete before all its chunks are stored");
        if (result == 1 && replicas is not null)
            await replicas.ReplicatedAsync(TaskKey(taskId));
        if (result == 1)
            counters?.Counted(LlmStreamMetrics.Embeddings, state.ToWire());
        return result == 1;
    }

    public async Task<EmbeddingChunk?> ReadChunkAsync(string taskId, int index, CancellationToken cancellationToken)
    {
        // Read in pieces, like the writes: a large result never holds Redis for one long command.
        var db = Db;
        var key = ChunkKey(taskId, index);
        var length = await db.StringLengthAsync(key);
        if (length == 0)
            return null;
        var bytes = new byte[length];
        for (long offset = 0; offset < length; offset += PieceBytes)
        {
            var piece = (byte[]?)await db.StringGetRangeAsync(key, offset, Math.Min(length, offset + PieceBytes) - 1);
            if (piece is null || piece.Length == 0)
                return null; // expired while we read
            piece.CopyTo(bytes, offset);
        }
        return EmbeddingChunkFormat.Decode(bytes);
    }
}
