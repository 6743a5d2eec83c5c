using System.Diagnostics;
using StackExchange.Redis;

namespace LlmStream.Messaging.RedisStreams;

/// <summary>One entry read from a work stream; <paramref name="TraceParent"/> is the sender's span (W3C), empty when none.</summary>
public sealed record QueueEntry(string Queue, string EntryId, string MessageId, string Type, ReadOnlyMemory<byte> Body, int Level, string TraceParent = "");

/// <summary>
/// BROKER=redis: one Redis stream per priority queue, read through a consumer group, plus one dead-letter
/// stream. Entries are acknowledged and deleted together only after the consumer succeeded; entries of a
/// worker that went silent are reclaimed; work streams are never trimmed (reclaim would lose trimmed entries).
/// </summary>
public sealed class RedisWorkQueue(IConnectionMultiplexer redis)
{
    public const string Group = "workers";
    public const string WakeChannel = "llmstream:queue-wake";
    // One hash tag for every work stream and the dead letters: a dead-lettering script touches a queue and the dead
    // letters together, and on a Redis Cluster a script stays in one slot (the queues live on one node, as a RabbitMQ
    // queue lives on its leader).
    public static readonly RedisKey DeadLetters = "llmstream:{queue}:dead-letters";

    public static RedisKey StreamKey(string queue) => "llmstream:{queue}:" + queue;

    const string SendScript = """
        local id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'type', ARGV[2], 'body', ARGV[3], 'sent', ARGV[4], 'trace', ARGV[5])
        redis.call('PUBLISH', 'llmstream:queue-wake', ARGV[6])
        return id
        """;

    // Acknowledges only an entry this consumer still owns: after a takeover, the new owner decides.
    const string AckScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
        if not pending[1] or pending[1][2] ~= ARGV[3] then return 0 end
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        return 1
        """;

    // Moves one entry to the dead letters with the reason, atomically with its removal from the work stream.
    const string DeadLetterScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
        if not pending[1] or pending[1][2] ~= ARGV[6] then return 0 end
        local entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
        if not entries[1] then return 0 end
        local fields = entries[1][2]
        table.insert(fields, 'queue'); table.insert(fields, ARGV[4])
        table.insert(fields, 'entry'); table.insert(fields, ARGV[2])
        table.insert(fields, 'error'); table.insert(fields, ARGV[3])
        table.insert(fields, 'failed_at'); table.insert(fields, ARGV[5])
        redis.call('XADD', KEYS[2], '*', unpack(fields))
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        return 1
        """;

    // Takes over entries idle longer than the claim time, scanning on from the cursor; those delivered too
    // often go to the dead letters instead. Returns the next cursor, the claimed entries and the dead-lettered ones.
    const string ReclaimScript = """
        local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[8], 'COUNT', ARGV[4])
        local claimed = reply[2]
        local result = {}
        local dead = {}
        for _, entry in ipairs(claimed) do
          local id = entry[1]
          local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
          local deliveries = 0
          if pending[1] then deliveries = pending[1][4] end
          if deliveries > tonumber(ARGV[5]) then
            local fields = entry[2]
            table.insert(fields, 'queue'); table.insert(fields, ARGV[6])
            table.insert(fields, 'entry'); table.insert(fields, id)
            table.insert(fields, 'error'); table.insert(fields, 'delivered ' .. deliveries .. ' times without being acknowledged (its workers stopped each time)')
            table.insert(fields, 'failed_at'); table.insert(fields, ARGV[7])
            redis.call('XADD', KEYS[2], '*', unpack(fields))
            redis.call('XACK', KEYS[1], ARGV[1], id)
            redis.call('XDEL', KEYS[1], id)
            table.insert(dead, entry)
          else
            table.insert(result, entry)
          end
        end
        return {reply[1], result, dead}
        """;

    // Keeps a long job's claim fresh, but only while this consumer still owns it.
    const string RenewScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
        if pending[1] and pending[1][2] == ARGV[2] then
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
          return 1
        end
        return 0
        """;

    // Hands an entry this consumer owns back to the group: marked idle for an hour, it is the next reclaim's to take.
    const string ReleaseScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
        if pending[1] and pending[1][2] == ARGV[2] then
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', 3600000, 'JUSTID')
          return 1
        end
        return 0
        """;

    IDatabase Db => redis.GetDatabase();

    /// <summary>Gives an entry back without running it (the worker stops): another worker's next reclaim takes it.</summary>
    public async Task<bool> ReleaseAsync(QueueEntry entry, string consumer) =>
        (long)await Db.ScriptEvaluateAsync(ReleaseScript, [StreamKey(entry.Queue)], [Group, consumer, entry.EntryId]) == 1;

    /// <summary>Returns once XADD succeeded.</summary>
    public async Task<string> SendAsync(string queue, string messageId, string type, byte[] body)
    {
        var result = await Db.ScriptEvaluateAsync(SendScript, [StreamKey(queue)],
            [messageId, type, body, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Activity.Current?.Id ?? "", queue]);
        return result.ToString();
    }

    /// <summary>Creates the group at id 0 (so entries sent before any worker existed are read too); idempotent.</summary>
    public async Task EnsureGroupAsync(string queue)
    {
        try
        {
            await Db.StreamCreateConsumerGroupAsync(StreamKey(queue), Group, "0", createStream: true);
        }
        catch (RedisServerException e) when (e.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
    }

    public async Task<IReadOnlyList<QueueEntry>> ReadNewAsync(string queue, int level, string consumer, int count)
    {
        StreamEntry[] entries;
        try
        {
            entries = await Db.StreamReadGroupAsync(StreamKey(queue), Group, consumer, ">", count);
        }
        catch (RedisServerException e) when (e.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            // The stream or group was deleted (e.g. FLUSHALL): recreate and read again next time.
            await EnsureGroupAsync(queue);
            return [];
        }
        return [.. entries.Select(e => ToEntry(queue, level, e.Id!, e.Values))];
    }

    readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _reclaimCursors = new();

    /// <summary>Claimed entries to run, and entries that went to the dead letters for too many deliveries.</summary>
    public async Task<(IReadOnlyList<QueueEntry> Claimed, IReadOnlyList<QueueEntry> DeadLettered)> ReclaimAsync(
        string queue, int level, string consumer, TimeSpan minIdle, int count, int maxDeliveries)
    {
        RedisResult result;
        var cursor = _reclaimCursors.GetValueOrDefault(queue, "0-0");
        try
        {
            result = await Db.ScriptEvaluateAsync(ReclaimScript, [StreamKey(queue), DeadLetters],
                [Group, consumer, (long)minIdle.TotalMilliseconds, count, maxDeliveries, queue, Now(), cursor]);
        }
        catch (RedisServerException e) when (e.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            await EnsureGroupAsync(queue);
            return ([], []);
        }
        var parts = (RedisResult[])result!;
        // Scan on from where the last call stopped, so entries behind long-running jobs are reached too.
        _reclaimCursors[queue] = parts[0].ToString();
        return (Entries(queue, level, (RedisResult[])parts[1]!), Entries(queue, level, (RedisResult[])parts[2]!));
    }

    static List<QueueEntry> Entries(string queue, int level, RedisResult[] entries)
    {
        var list = new List<QueueEntry>();
        foreach (var entry in entries)
        {
            var parts = (RedisResult[])entry!;
            var fields = (RedisResult[])parts[1]!;
            var values = new NameValueEntry[fields.Length / 2];
            for (var i = 0; i < values.Length; i++)
                values[i] = new NameValueEntry((RedisValue)fields[2 * i], (RedisValue)fields[2 * i + 1]);
            list.Add(ToEntry(queue, level, parts[0].ToString(), values));
        }
        return list;
    }

    /// <summary>False when another consumer owns the entry now (it was taken over).</summary>
    public async Task<bool> AckAsync(QueueEntry entry, string consumer) =>
        (long)await Db.ScriptEvaluateAsync(AckScript, [StreamKey(entry.Queue)], [Group, entry.EntryId, consumer]) == 1;

    public async Task<bool> DeadLetterAsync(QueueEntry entry, string reason, string consumer) =>
        (long)await Db.ScriptEvaluateAsync(DeadLetterScript, [StreamKey(entry.Queue), DeadLetters], [Group, entry.EntryId, reason, entry.Queue, Now(), consumer]) == 1;

    public async Task<bool> RenewAsync(QueueEntry entry, string consumer) =>
        (long)await Db.ScriptEvaluateAsync(RenewScript, [StreamKey(entry.Queue)], [Group, consumer, entry.EntryId]) == 1;

    /// <summary>Waiting = stream length − pending (delivered, not yet acknowledged).</summary>
    public async Task<(long Waiting, long InFlight)> DepthAsync(string queue)
    {
        var length = await Db.StreamLengthAsync(StreamKey(queue));
        try
        {
            var pending = await Db.StreamPendingAsync(StreamKey(queue), Group);
            return (length - pending.PendingMessageCount, pending.PendingMessageCount);
        }
        catch (RedisServerException e) when (e.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            return (length, 0);
        }
    }

    public Task<long> DeadLetterCountAsync() => Db.StreamLengthAsync(DeadLetters);

    /// <summary>When the oldest entry not yet delivered to any worker was sent (its stream id is its time), if any.</summary>
    public async Task<DateTimeOffset?> OldestWaitingAsync(string queue)
    {
        var key = StreamKey(queue);
        RedisValue after = "-";
        try
        {
            var groups = await Db.StreamGroupInfoAsync(key);
            if (groups.FirstOrDefault(g => g.Name == Group) is { LastDeliveredId: { } delivered })
                after = "(" + delivered;
        }
        catch (RedisServerException e) when (e.Message.Contains("no such key", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        var first = await Db.StreamRangeAsync(key, after, "+", count: 1);
        return first.Length == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(((string)first[0].Id!).Split('-')[0], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Dead-lettered entries per queue they came from (the dead-letter stream is one for all queues).</summary>
    public async Task<IReadOnlyDictionary<string, long>> DeadLettersByQueueAsync()
    {
        var counts = new Dictionary<string, long>();
        RedisValue after = "-";
        while (true)
        {
            var page = await Db.StreamRangeAsync(DeadLetters, after, "+", count: 1000);
            foreach (var entry in page)
            {
                var queue = (string?)entry["queue"] ?? "";
                counts[queue] = counts.GetValueOrDefault(queue) + 1;
            }
            if (page.Length < 1000)
                return counts;
            after = "(" + page[^1].Id;
        }
    }

    static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    static QueueEntry ToEntry(string queue, int level, string entryId, NameValueEntry[] values)
    {
        string? Field(string name) => values.FirstOrDefault(v => v.Name == name).Value is { IsNull: false } v ? v.ToString() : null;
        var body = values.FirstOrDefault(v => v.Name == "body").Value;
        return new QueueEntry(queue, entryId, Field("id") ?? "", Field("type") ?? "", body.IsNull ? ReadOnlyMemory<byte>.Empty : (byte[])body!, level,
            Field("trace") ?? "");
    }
}
