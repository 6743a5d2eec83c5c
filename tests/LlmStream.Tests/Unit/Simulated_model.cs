using System.Text;
using LlmStream.Providers;
using Microsoft.Extensions.AI;

namespace LlmStream.Tests.Unit;

public sealed class Simulated_model
{
    [Test]
    public async Task Streams_a_deterministic_answer_that_says_it_is_simulated()
    {
        var client = new SimulatedChatClient("gpt-4o-mini", tokensPerSecond: 0, TimeProvider.System);
        var text = new StringBuilder();
        UsageDetails? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hello world")]))
        {
            text.Append(update.Text);
            usage = update.Contents.OfType<UsageContent>().SingleOrDefault()?.Details ?? usage;
            finish = update.FinishReason ?? finish;
        }

        Assert.That(text.ToString(), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens("hello world"))));
        Assert.That(text.ToString(), Does.StartWith("[simulated model]").And.Contain("\"hello world\""));
        Assert.That(finish, Is.EqualTo(ChatFinishReason.Stop));
        Assert.That(usage!.InputTokenCount, Is.EqualTo(2));
        Assert.That(usage.OutputTokenCount, Is.EqualTo(SimulatedChatClient.Tokens("hello world").Count));
    }
}
