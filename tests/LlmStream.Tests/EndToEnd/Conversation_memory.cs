using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Providers;
using LlmStream.Tests.Infrastructure;
using LlmStream.FakeOpenAI;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// A session remembers: a task of a session is sent to the model after the session's earlier turns (each message with
/// the answer that completed it, oldest first), read back from the task records, within the history budget. What the
/// fake provider receives is the proof.
/// </summary>
[TestFixture("inmemory")]
[TestFixture("rabbitmq")]
[TestFixture("redis")]
public sealed class Conversation_memory(string broker)
{
    const string Model = "gpt-4o-mini";

    static string Answer(string message) => "answer to " + message;

    [Test]
    public async Task The_third_turn_is_sent_with_the_first_two_exchanges_even_after_a_restart()
    {
        await using var cluster = await Cluster.StartAsync($"memory-{broker}", broker: broker);
        cluster.Provider.Behavior.Reply = Answer;
        using var http = cluster.Client();

        var (first, session) = await cluster.PostChatAsync(http, new { message = "my name is Ada" });
        await CompletedAsync(cluster, http, first);
        var (second, _) = await cluster.PostChatAsync(http, new { message = "I live in London", session_id = session });
        await CompletedAsync(cluster, http, second);
        // A failed task is no turn: its message had no answer.
        cluster.Provider.Behavior.FailNext(400, message: "refused on purpose");
        var (failed, _) = await cluster.PostChatAsync(http, new { message = "this one fails", session_id = session });
        Assert.That((await cluster.WaitForEndAsync(http, failed, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("failed"));

        var third = http;
        if (broker != "inmemory")
        {
            // The turns live in Redis, not in a process: a new worker and another gateway know them.
            cluster.Workers[0].Kill();
            await cluster.StartWorkerAsync();
            await cluster.StartGatewayAsync();
            third = cluster.Client(1);
        }
        var (last, _) = await cluster.PostChatAsync(third, new { message = "what is my name?", session_id = session, system_prompt = "Be brief." });
        var status = await CompletedAsync(cluster, third, last);

        Assert.That(MessagesOf(cluster.Provider.Behavior.Requests[^1]), Is.EqualTo(new[]
        {
            "system: Be brief.",
            "user: my name is Ada", "assistant: answer to my name is Ada",
            "user: I live in London", "assistant: answer to I live in London",
            "user: what is my name?",
        }));
        Assert.That(status.GetProperty("history_turns").GetInt32(), Is.EqualTo(2));
        var firstStatus = await third.GetFromJsonAsync<JsonElement>($"/chat/{first}");
        Assert.That(firstStatus.GetProperty("history_turns").GetInt32(), Is.EqualTo(0), "the session's first task had nothing before it");

        // "history": false sends the message alone.
        var (alone, _) = await cluster.PostChatAsync(third, new { message = "a fresh question", session_id = session, history = false });
        var aloneStatus = await CompletedAsync(cluster, third, alone);
        Assert.That(MessagesOf(cluster.Provider.Behavior.Requests[^1]), Is.EqualTo(new[] { "user: a fresh question" }));
        Assert.That(aloneStatus.GetProperty("history_turns").GetInt32(), Is.EqualTo(0));

        // Another session knows nothing of this one.
        var (other, _) = await cluster.PostChatAsync(third, new { message = "who am I?" });
        await CompletedAsync(cluster, third, other);
        Assert.That(MessagesOf(cluster.Provider.Behavior.Requests[^1]), Is.EqualTo(new[] { "user: who am I?" }));
        if (third != http)
            third.Dispose();
    }

    [Test]
    public async Task A_budget_too_small_for_the_whole_history_drops_the_oldest_turns_first()
    {
        string[] messages = ["the first and by far the longest message of this conversation, which will not fit", "second message", "third", "fourth?"];
        var tokens = new PromptTokens();
        int Cost(string message) => tokens.Count(Model, [message, Answer(message)]);
        // Room for the second and third turns, not for the first as well.
        var budget = Cost(messages[1]) + Cost(messages[2]) + 2;
        Assert.That(Cost(messages[0]), Is.GreaterThan(2));
        await using var cluster = await Cluster.StartAsync($"memory-budget-{broker}", broker: broker, settings: new Dictionary<string, string>
        {
            ["HISTORY_TOKENS"] = "1", // the model's own budget below wins
            ["HISTORY_MODEL_TOKENS"] = $"{Model}={budget}",
        });
        cluster.Provider.Behavior.Reply = Answer;
        using var http = cluster.Client();

        string? session = null;
        var statuses = new List<JsonElement>();
        foreach (var message in messages)
        {
            var (taskId, sessionId) = session is null
                ? await cluster.PostChatAsync(http, new { message, model = Model })
                : await cluster.PostChatAsync(http, new { message, model = Model, session_id = session });
            session = sessionId;
            statuses.Add(await CompletedAsync(cluster, http, taskId));
        }

        Assert.That(MessagesOf(cluster.Provider.Behavior.Requests[^1]), Is.EqualTo(new[]
        {
            "user: second message", "assistant: answer to second message",
            "user: third", "assistant: answer to third",
            "user: fourth?",
        }));
        Assert.That(statuses[^1].GetProperty("history_turns").GetInt32(), Is.EqualTo(2));
    }

    static string[] MessagesOf(RecordedRequest request) => [.. request.Messages.Select(m => $"{m.Role}: {m.Content}")];

    static async Task<JsonElement> CompletedAsync(Cluster cluster, HttpClient http, string taskId)
    {
        var status = await cluster.WaitForEndAsync(http, taskId, TimeSpan.FromSeconds(60));
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("completed"), cluster.Logs());
        return status;
    }
}
