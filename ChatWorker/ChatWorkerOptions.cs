using System.ComponentModel.DataAnnotations;
using LlmStream.ServiceDefaults.Settings;

namespace LlmStream.ChatWorker;

public sealed class ChatWorkerOptions : IValidatableObject
{
    /// <summary>In-flight chat messages per worker process (async I/O, so far above a thread pool's size).</summary>
    [ConfigurationKeyName("CHAT_CONCURRENCY"), Range(1, 10_000, ErrorMessage = "CHAT_CONCURRENCY must be between {1} and {2}")]
    public int Concurrency { get; set; } = 100;

    /// <summary>
    /// Tokens of one stream that go to the store in the same call (they arrived while the previous call was in flight)
    /// become one event with their text joined: one stream entry, one wake, one SSE event instead of several.
    /// </summary>
    [ConfigurationKeyName("STREAM_MERGE_TOKENS")]
    public bool MergeTokens { get; set; }

    /// <summary>The most tokens of a session's earlier turns sent with a /chat message (0: no memory).</summary>
    [ConfigurationKeyName("HISTORY_TOKENS"), Range(0, 10_000_000, ErrorMessage = "HISTORY_TOKENS must be between {1} and {2}")]
    public int HistoryTokens { get; set; } = 8_000;

    /// <summary>Per model or deployment, instead of <see cref="HistoryTokens"/>: <c>llama3=2000,gpt-4.1=50000</c>.</summary>
    [ConfigurationKeyName("HISTORY_MODEL_TOKENS")]
    public string? HistoryModelTokens { get; set; }

    /// <summary>The history budget of <paramref name="model"/>.</summary>
    public int HistoryBudget(string model) =>
        SettingLists.TryParseNumbers(HistoryModelTokens, out var perModel, out _) && perModel.TryGetValue(model, out var tokens) ? tokens : HistoryTokens;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!SettingLists.TryParseNumbers(HistoryModelTokens, out var perModel, out var error))
            yield return new ValidationResult($"HISTORY_MODEL_TOKENS: {error}");
        else if (perModel.FirstOrDefault(m => m.Value < 0) is { Key: not null } negative)
            yield return new ValidationResult($"HISTORY_MODEL_TOKENS: {negative.Key} must have 0 tokens or more");
    }
}
