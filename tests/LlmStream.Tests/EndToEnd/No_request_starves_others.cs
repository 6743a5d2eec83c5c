using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Two hostile prompts near the body limit, one of them a single 900,000-character pre-token (byte-pair merging costs
/// the square of that: minutes) and one of random Unicode, beside 20 short chats on the same worker: the gateway counts
/// every prompt once in linear time and the count travels in the message, so every short chat completes and the big
/// ones do too. The model's context is set wide enough to accept both, and the rate limits are off.
/// </summary>
public sealed class No_request_starves_others
{
    public static string RandomUnicode(int maxUtf8Bytes, int seed)
    {
        var random = new Random(seed);
        var text = new StringBuilder();
        var bytes = 0;
        while (true)
        {
            var codePoint = random.Next(0x20, 0x2FFFF);
            if (codePoint is >= 0xD800 and <= 0xDFFF || codePoint is '"' or '\\' or 0x7F)
                continue;
            var rune = char.ConvertFromUtf32(codePoint);
            var size = Encoding.UTF8.GetByteCount(rune);
            if (bytes + size > maxUtf8Bytes)
                return text.ToString();
            text.Append(rune);
            bytes += size;
        }
    }

    public static Dictionary<string, string> Settings() => new()
    {
        ["CHAT_CONCURRENCY"] = "8",
        ["LLM_RPM"] = "0",
        ["LLM_TPM"] = "0",
        ["LLM_MODEL_CONTEXT_TOKENS"] = "gpt-4o-mini=5000000",
    };

    [Test]
    public async Task Every_short_chat_completes_beside_two_hostile_prompts()
    {
        await using var cluster = await Cluster.StartAsync("starve", workers: 1, settings: Settings());
        cluster.Provider.Behavior.Reply = message => message.Length > 10_000 ? "that was long" : "Echo: " + message;
        using var http = cluster.Client();

        var oneCharacter = new string('a', 900_000);
        var unicode = RandomUnicode(1_000_000, seed: 7); // its JSON body stays under MAX_REQUEST_BYTES (1 MiB)
        var big = new List<string>();
        foreach (var message in new[] { oneCharacter, unicode })
        {
            // Written raw: a serializer would escape the non-ASCII text six bytes a character, past the body limit.
            using var body = new StringContent("{\"message\":\"" + message + "\"}", Encoding.UTF8, "application/json");
            var response = await http.PostAsync("/chat", body);
            var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.That((int)response.StatusCode, Is.EqualTo(202), accepted.ToString());
            big.Add(accepted.GetProperty("task_id").GetString()!);
        }
        var small = new List<string>();
        for (var i = 0; i < 20; i++)
            small.Add((await cluster.PostChatAsync(http, new { message = $"short chat {i}" })).TaskId);

        foreach (var taskId in small.Concat(big))
        {
            var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(120));
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), cluster.Logs());
        }
        var counted = await http.GetFromJsonAsync<JsonElement>($"/chat/{big[0]}");
        Assert.That(counted.GetProperty("result").GetString(), Is.EqualTo("that was long"));
    }
}
