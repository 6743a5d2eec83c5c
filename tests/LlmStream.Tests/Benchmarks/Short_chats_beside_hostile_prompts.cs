using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Benchmarks;

/// <summary>
/// `make bench`: the time to first token of 20 short chats (POST /chat to the first token event on the client), alone
/// and right behind the two hostile prompts of <see cref="No_request_starves_others"/> (900,000 characters of one
/// letter, 1 MB of random Unicode), on one RabbitMQ chat worker. Measures; asserts only that every chat completed.
/// </summary>
[Explicit("a benchmark: run with make bench")]
[Category("Benchmark")]
public sealed class Short_chats_beside_hostile_prompts
{
    [Test]
    public async Task Time_to_first_token_alone_and_beside_them()
    {
        await using var cluster = await Cluster.StartAsync("bench-hostile", workers: 1, settings: No_request_starves_others.Settings());
        cluster.Provider.Behavior.Reply = message => message.Length > 10_000 ? "that was long" : "Echo: " + message;
        using var http = cluster.Client();
        await ShortChatsAsync(cluster, http); // warm-up: JIT, connections, the tokenizer's tables

        var alone = await ShortChatsAsync(cluster, http);
        var unicode = No_request_starves_others.RandomUnicode(1_000_000, seed: 11);
        // Posted at the same moment as the short chats: the gateway counts them while it takes the short ones.
        var posting = new[] { new string('a', 900_000), unicode }.Select(async message =>
        {
            using var body = new StringContent("{\"message\":\"" + message + "\"}", Encoding.UTF8, "application/json");
            var accepted = await (await http.PostAsync("/chat", body)).Content.ReadFromJsonAsync<JsonElement>();
            return accepted.GetProperty("task_id").GetString()!;
        }).ToList();
        var beside = await ShortChatsAsync(cluster, http);
        foreach (var taskId in await Task.WhenAll(posting))
            Assert.That((await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(120))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        var lines = new[] { Row("20 short chats alone", alone), Row("the same, posted together with the two hostile prompts", beside) };
        foreach (var line in lines)
            TestContext.Progress.WriteLine(line);
        await File.AppendAllTextAsync(Path.Combine(RepoPaths.Root, "TestResults", "bench-hostile.md"), string.Join('\n', lines) + "\n");
    }

    static string Row(string what, List<double> ms)
    {
        ms.Sort();
        return $"| {what} | {Percentile(ms, 0.5):0} | {Percentile(ms, 0.99):0} | {ms[^1]:0} |";
    }

    static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    /// <summary>20 chats posted at once; each one's milliseconds from its POST to its first token at the client.</summary>
    static async Task<List<double>> ShortChatsAsync(Cluster cluster, HttpClient http)
    {
        var times = await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
        {
            var clock = Stopwatch.StartNew();
            var (taskId, sessionId) = await cluster.PostChatAsync(http, new { message = $"short chat {i}" });
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            using var response = await http.GetAsync($"/stream/{sessionId}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            await foreach (var e in SseClient.ReadAsync(await response.Content.ReadAsStreamAsync(cts.Token), cts.Token))
            {
                if (e.Event == "token")
                    return clock.Elapsed.TotalMilliseconds;
                if (e.Event is "done" or "error" or "cancelled")
                    break;
            }
            throw new InvalidOperationException($"task {taskId} ended without a token");
        }));
        return [.. times];
    }
}
