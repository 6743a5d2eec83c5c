using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Telemetry;
using LlmStream.Sessions.Streams;
using Microsoft.Extensions.AI;

namespace LlmStream.ChatWorker;

/// <summary>What the provider has said in one attempt, as it streams in: the text, the tool calls, the usage, why it stopped.</summary>
public sealed class Answer
{
    readonly StringBuilder _text = new();
    readonly List<ToolCall> _toolCalls = [];
    ChatFinishReason? _finishReason;

    /// <summary>Tokens streamed so far (text updates).</summary>
    public int Tokens { get; private set; }

    public UsageDetails? Usage { get; private set; }

    public string Text => _text.ToString();

    /// <summary>Adds one update; its text (the token), or "" when it has none.</summary>
    public string Add(ChatResponseUpdate update)
    {
        var token = update.Text;
        if (token.Length > 0)
        {
            _text.Append(token);
            Tokens++;
        }
        _finishReason = update.FinishReason ?? _finishReason;
        // A plain loop: this runs for every chunk of every stream.
        var contents = update.Contents;
        for (var i = 0; i < contents.Count; i++)
        {
            if (contents[i] is UsageContent usage)
                Usage = usage.Details;
            else if (contents[i] is FunctionCallContent call)
                _toolCalls.Add(new ToolCall(call.CallId, call.Name, JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>())));
        }
        return token;
    }

    /// <summary>The provider's finish_reason, or what the answer implies when it gave none.</summary>
    public string Finish => _finishReason?.Value ?? (_toolCalls.Count > 0 ? "tool_calls" : "stop");

    public TokenUsage? TokenUsage => Usage is null ? null : new TokenUsage(
        (int)(Usage.InputTokenCount ?? 0), (int)(Usage.OutputTokenCount ?? 0),
        (int)(Usage.TotalTokenCount ?? (Usage.InputTokenCount ?? 0) + (Usage.OutputTokenCount ?? 0)));

    /// <summary>The model's function calls as a JSON array of {id, name, arguments}; null when it made none.</summary>
    public string? ToolCallsJson => _toolCalls.Count == 0 ? null : JsonSerializer.Serialize(_toolCalls.Select(c => new { id = c.Id, name = c.Name, arguments = c.Arguments }));
}

/// <summary>One provider call's measures: the time to its first token and its duration with how it ended.</summary>
public sealed class ProviderCall(string model, LlmStreamMetrics metrics)
{
    readonly long _started = Stopwatch.GetTimestamp();

    public void FirstToken() => metrics.TimeToFirstToken(model, LlmStreamMetrics.Since(_started));

    /// <param name="outcome">ok, error, timeout or cancelled.</param>
    public void Ended(string outcome) => metrics.ProviderCall(LlmStreamMetrics.Chat, model, LlmStreamMetrics.Since(_started), outcome);
}
