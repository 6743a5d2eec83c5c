using LlmStream.Tests.Infrastructure;
namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// What a gateway with no worker leaves behind: one message and its records (the task, its session's stream and the
/// session's turns) per accepted chat, nothing for rejected ones.
/// </summary>
public static class EnqueuedWork
{
    public static async Task AssertOnlyAcceptedAsync(Cluster cluster, int accepted)
    {
        var depths = await RabbitMqServer.QueueDepthsAsync(cluster.RabbitMqUrl,
            "high", "default", "low", "embeddings-high", "embeddings-default", "embeddings-low");
        Assert.That(depths.Values.Sum(v => v), Is.EqualTo(accepted), "no message for a rejected request");

        await using var redis = await cluster.Redis.ConnectAsync();
        var records = new List<string>();
        long waiting = 0;
        await foreach (var key in redis.GetServer(redis.GetEndPoints()[0]).KeysAsync(pattern: "llmstream:*"))
        {
            // The ledger of waiting messages (for /stats) holds one entry per accepted message.
            if (key.ToString().StartsWith("llmstream:waiting:", StringComparison.Ordinal))
                waiting += await redis.GetDatabase().SortedSetLengthAsync(key);
            else
                records.Add(key!);
        }
        Assert.That(waiting, Is.EqualTo(accepted), "one waiting entry per accepted message");
        Assert.That(records, Has.Count.EqualTo(3 * accepted), "no task record, stream or turns for a rejected request: " + string.Join(", ", records));
        Assert.That(records.Count(k => k.Contains(":turns:", StringComparison.Ordinal)), Is.EqualTo(accepted));
    }
}
