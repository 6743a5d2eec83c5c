using System.Globalization;

namespace LlmStream.Sessions.Streams;

/// <summary>
/// How the Redis store keeps a finished attempt's token events: in chunks of up to <see cref="ChunkTokens"/> tokens
/// (and about <see cref="ChunkBytes"/> bytes of text), each chunk one stream entry at the place of its last token, with
/// that token's id. A token event stored one entry each costs Redis its entry and a copy of the task id; a chunk holds
/// the events' common start once, their ids as differences and their texts. Reading expands a chunk back into the same
/// events, ids and data, so a reader, live or resuming with any <c>Last-Event-ID</c>, sees exactly what it would have
/// seen before (<see cref="Expand"/> returns only the events after the id it is given).
/// </summary>
/// <remarks>
/// A chunk's data: the start common to the events' data (up to and with <c>"text":</c>), a line; the events' ids, the
/// first whole and each next as "milliseconds since the previous-sequence" ("-sequence" left out when 0), comma-separated, a line; then each event's
/// text as JSON, one per line (JSON text has no raw line break); each event's data is the start, its text and "}".
/// </remarks>
public static class CompactedTokens
{
    public const string Type = "tokens";
    public const int ChunkTokens = 64;
    public const int ChunkBytes = 8192;

    /// <summary>At most this many tokens are compacted at once; a longer attempt keeps one entry per token.</summary>
    public const int MaxTokens = 100_000;

    /// <summary>
    /// Lua for the store's finish script: <c>compact(stream, from)</c> rewrites the entries after <c>from</c> (the
    /// attempt's started event), which must all be token events of one attempt, into chunks. Stream ids cannot be
    /// inserted before the last one, so the stream is rebuilt: the entries up to <c>from</c> as they were, then the
    /// chunks at their last token's id (the terminal event follows). Anything unexpected leaves the stream as it is.
    /// </summary>
    public static readonly string CompactLua = $$"""
        local function compact(stream, from)
          local tokens = redis.call('XRANGE', stream, '(' .. from, '+', 'COUNT', {{MaxTokens + 1}})
          if #tokens < 2 or #tokens > {{MaxTokens}} then return end
          local at = string.find(tokens[1][2][4] or '', '"text":', 1, true)
          if not at then return end
          local prefix = string.sub(tokens[1][2][4], 1, at + 6)
          local chunks, ids, texts, bytes, previous = {}, {}, {}, 0, nil
          for i = 1, #tokens do
            local id, f = tokens[i][1], tokens[i][2]
            if f[1] ~= 't' or f[2] ~= 'token' or f[3] ~= 'd' or #f ~= 4 then return end
            local d = f[4]
            if string.sub(d, 1, #prefix) ~= prefix or string.byte(d, -1) ~= 125 then return end
            local ms, seq = string.match(id, '^(%d+)-(%d+)$')
            ms = tonumber(ms)
            if not previous then ids[1] = id elseif seq == '0' then ids[#ids + 1] = ms - previous
            else ids[#ids + 1] = (ms - previous) .. '-' .. seq end
            previous = ms
            texts[#texts + 1] = string.sub(d, #prefix + 1, -2)
            bytes = bytes + #d - #prefix
            if #texts == {{ChunkTokens}} or bytes >= {{ChunkBytes}} or i == #tokens then
              chunks[#chunks + 1] = { id, prefix .. '\n' .. table.concat(ids, ',') .. '\n' .. table.concat(texts, '\n') }
              ids, texts, bytes, previous = {}, {}, 0, nil
            end
          end
          local before = redis.call('XRANGE', stream, '-', from)
          redis.call('DEL', stream)
          for _, e in ipairs(before) do redis.call('XADD', stream, e[1], unpack(e[2])) end
          for _, c in ipairs(chunks) do redis.call('XADD', stream, c[1], 't', '{{Type}}', 'd', c[2]) end
        end
        """;

    /// <summary>Adds the chunk's token events after <paramref name="after"/> to <paramref name="into"/>, until it holds <paramref name="limit"/>.</summary>
    public static void Expand(string data, StreamId after, List<StreamEntry> into, int limit)
    {
        var rest = data.AsSpan();
        var prefix = TextLines.Next(ref rest);
        var ids = TextLines.Next(ref rest);
        var ms = 0L;
        var first = true;
        while (ids.Length > 0 && into.Count < limit)
        {
            var comma = ids.IndexOf(',');
            var id = comma < 0 ? ids : ids[..comma];
            ids = comma < 0 ? [] : ids[(comma + 1)..];
            var text = TextLines.Next(ref rest);
            var dash = id.IndexOf('-');
            var milliseconds = long.Parse(dash < 0 ? id : id[..dash], NumberStyles.None, CultureInfo.InvariantCulture);
            ms = first ? milliseconds : ms + milliseconds;
            first = false;
            var tokenId = new StreamId(ms, dash < 0 ? 0 : long.Parse(id[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture));
            if (tokenId.CompareTo(after) > 0)
                into.Add(new StreamEntry(tokenId.ToString(), StreamEventTypes.Token, string.Concat(prefix, text, "}")));
        }
    }
}
