using System.Security.Cryptography;

namespace LlmStream.Sessions;

/// <summary>
/// Where a session's data lives in Redis: one of <see cref="Count"/> shards, each a hash tag whose slot sits in the
/// middle of its 24th of Redis Cluster's 16,384 slots, so that 2, 3, 4, 6, 8, 12 or 24 masters with the default slot
/// ranges hold as many shards each. A session's shard comes from its id; a task's id is made in its session's shard
/// (<see cref="NewId"/>), so a task, its session's stream and the counters its end increments share one slot (a Lua
/// script may change them together) and a task is still found from its id alone. On a single Redis the tags change
/// nothing but the key names.
/// </summary>
public static class SessionShards
{
    public const int Count = 24;

    // "s10" hashes to slot 431 (CRC16 mod 16384), "s25" to 1113, ...: the first "s<k>" within 120 slots of each 24th's middle.
    static readonly string[] Tags =
    [
        "{s10}", "{s25}", "{s36}", "{s69}", "{s6}", "{s43}", "{s11}", "{s24}", "{s302}", "{s68}", "{s7}", "{s46}",
        "{s16}", "{s27}", "{s38}", "{s67}", "{s4}", "{s41}", "{s13}", "{s26}", "{s39}", "{s66}", "{s5}", "{s40}",
    ];

    /// <summary>The shard of an id (a session's, a task's, an embedding batch's): FNV-1a of its characters, stable everywhere.</summary>
    public static int Of(string id) => Of(id.AsSpan());

    static int Of(ReadOnlySpan<char> id)
    {
        var hash = 2166136261u;
        foreach (var c in id)
            hash = (hash ^ c) * 16777619u;
        return (int)(hash % Count);
    }

    /// <summary>The hash tag of a shard, braces included: "llmstream:{s10}:task:…".</summary>
    public static string Tag(int shard) => Tags[shard];

    /// <summary>The hash tag of the shard <paramref name="id"/> belongs to.</summary>
    public static string TagOf(string id) => Tags[Of(id)];

    /// <summary>A new id of 32 lowercase hex characters (128 random bits, about 4.6 of them spent on the shard) in <paramref name="shard"/>.</summary>
    public static string NewId(int shard)
    {
        // One candidate in 24 lands in the shard. Candidates come 32 at a time from one call to the system's generator
        // (a call costs far more than its bytes), each printed into one buffer and hashed there; only the winner becomes a string.
        Span<byte> candidates = stackalloc byte[16 * 32];
        Span<char> hex = stackalloc char[32];
        while (true)
        {
            RandomNumberGenerator.Fill(candidates);
            for (var offset = 0; offset < candidates.Length; offset += 16)
            {
                Convert.TryToHexStringLower(candidates.Slice(offset, 16), hex, out _);
                if (Of(hex) == shard)
                    return new string(hex);
            }
        }
    }

    /// <summary>A new task id in the shard of <paramref name="sessionId"/>.</summary>
    public static string NewTaskId(string sessionId) => NewId(Of(sessionId));

    /// <summary>Every shard's tag, for what reads across all of them (counters, the running tasks).</summary>
    public static IReadOnlyList<string> AllTags => Tags;
}
