using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;

namespace LlmStream.Providers;

/// <summary>
/// The model used when no provider is configured, so the product runs offline. Its answers say
/// plainly that they are simulated, and they are deterministic: the same message gives the same tokens.
/// </summary>
public sealed class SimulatedChatClient(string model, int tokensPerSecond, TimeProvider clock) : IChatClient
{
    public const string ModelPrefix = "simulated:";

    public static IReadOnlyList<string> Tokens(string message)
    {
        var quoted = message.Length > 200 ? message[..200] + "…" : message;
        var text = $"[simulated model] You said: \"{quoted}\". This answer comes from LlmStream's built-in simulated model, " +
                   "streamed token by token through the queue, a worker and the session's stream. " +
                   "Set OPENAI_API_KEY, OPENAI_BASE_URL or AZURE_OPENAI_ENDPOINT to talk to a real model.";
        var tokens = new List<string>();
        var start = 0;
        for (var i = 1; i <= text.Length; i++)
        {
            if (i == text.Length || text[i] == ' ')
            {
                tokens.Add(text[start..i]);
                start = i;
            }
        }
        return tokens;
    }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        UsageDetails? usage = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            text.Append(update.Text);
            usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
        }
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = ModelPrefix + model,
            FinishReason = ChatFinishReason.Stop,
            Usage = usage,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages.ToList();
        var last = list.LastOrDefault(m => m.Role == ChatRole.User)?.Text ?? "";
        var tokens = Tokens(last);
        var delay = tokensPerSecond > 0 ? TimeSpan.FromSeconds(1.0 / tokensPerSecond) : TimeSpan.Zero;
        foreach (var token in tokens)
        {
            if (delay > TimeSpan.Zero)
                await Task.Delay(delay, clock, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            yield return new ChatResponseUpdate(ChatRole.Assistant, token) { ModelId = ModelPrefix + model };
        }

        var promptTokens = list.Sum(m => m.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        yield return new ChatResponseUpdate
        {
            Role = ChatRole.Assistant,
            FinishReason = ChatFinishReason.Stop,
            ModelId = ModelPrefix + model,
            Contents = [new UsageContent(new UsageDetails
            {
                InputTokenCount = promptTokens,
                OutputTokenCount = tokens.Count,
                TotalTokenCount = promptTokens + tokens.Count,
            })],
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}
