using LlmStream.Sessions;

namespace LlmStream.Tests.Unit;

/// <summary>New ids land in the shard asked for, as 32 lowercase hex characters, and do not repeat.</summary>
public sealed class Session_ids
{
    [Test]
    public void A_new_id_is_in_its_shard_as_lowercase_hex_and_never_repeats()
    {
        var seen = new HashSet<string>();
        for (var shard = 0; shard < SessionShards.Count; shard++)
        {
            for (var i = 0; i < 200; i++)
            {
                var id = SessionShards.NewId(shard);
                Assert.That(id, Does.Match("^[0-9a-f]{32}$"));
                Assert.That(SessionShards.Of(id), Is.EqualTo(shard), id);
                Assert.That(seen.Add(id), Is.True, $"{id} was made twice");
            }
        }
        // Every shard and every hex digit at every position is reachable: the ids are not drawn from a narrowed set.
        var digitsAt = Enumerable.Range(0, 32).Select(_ => new HashSet<char>()).ToArray();
        foreach (var id in seen)
            for (var p = 0; p < 32; p++)
                digitsAt[p].Add(id[p]);
        Assert.That(digitsAt.Select(d => d.Count), Is.All.EqualTo(16));
    }

    [Test]
    public void A_task_id_shares_its_session_s_shard()
    {
        var session = SessionShards.NewId(7);
        Assert.That(SessionShards.Of(SessionShards.NewTaskId(session)), Is.EqualTo(7));
    }
}
