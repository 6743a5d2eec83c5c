using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Providers;
using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>
/// What a task's session said before it: the earlier turns (each what was asked and the answer that completed it), read
/// from the task records the store keeps anyway. A /chat task remembers every earlier task of its session; a
/// /v1/responses task the chain its previous_response_id names (that response, the one it continued, and so on), which
/// shares the session. Newest first into the model's budget (HISTORY_TOKENS, HISTORY_MODEL_TOKENS, and never more than
/// the context window leaves), counted with the rate limiter's tokenizer, then sent oldest first: when they do not all
/// fit, the oldest are the ones dropped. A task that failed or was cancelled is not a turn: its question had no answer.
/// </summary>
public sealed class ConversationMemory(ITaskStore store, PromptTokens tokens, IOptions<ChatWorkerOptions> options, IOptions<ModelOptions> models)
{
    /// <summary>The turns to send before the message, how many exchanges they are and their tokens.</summary>
    public sealed record Recalled(IReadOnlyList<ChatTurn> Messages, int Turns, int Tokens)
    {
        public static readonly Recalled Nothing = new([], 0, 0);
    }

    /// <summary>Pages read from the newest back: 4, then 28 more, then the rest of the 200 kept.</summary>
    static readonly int[] PageSizes = [4, 28, TaskStoreLimits.TurnsKept - 32];

    public async Task<Recalled> RecallAsync(ChatRequested request, int promptTokens, int completionTokens, CancellationToken cancellationToken)
    {
        var chained = request.PreviousTaskId is not null;
        if (!chained && (request.Conversation is not null || request.History == false))
            return Recalled.Nothing;
        var budget = Math.Min(options.Value.HistoryBudget(request.Model), models.Value.ContextLimit(request.Model) - promptTokens - completionTokens);
        if (budget <= 0)
            return Recalled.Nothing;

        // Newest first, a few records first: a session of long messages fills the budget with its latest turns, and
        // older records (up to a megabyte of message each) are never read. Each record is read and counted once.
        var kept = new List<IReadOnlyList<ChatTurn>>();
        var used = 0;
        var read = 0;
        var next = request.PreviousTaskId;
        foreach (var size in PageSizes)
        {
            var page = await store.EarlierTasksAsync(request.SessionId, request.TaskId, read, size, cancellationToken);
            read += size;
            for (var i = page.Count - 1; i >= 0; i--)
            {
                var task = page[i];
                var stored = task.Response is null ? null : JsonSerializer.Deserialize<StoredResponse>(task.Response, StreamEvents.Json);
                if (chained)
                {
                    if (task.TaskId != next)
                        continue; // another branch of the session's responses
                    next = stored?.PreviousTaskId;
                }
                if (Turn(task, stored) is { } turn)
                {
                    var cost = tokens.Count(request.Model, turn.SelectMany(t => t.ToolCalls is null ? [t.Content] : t.ToolCalls.Select(c => c.Arguments).Prepend(t.Content)));
                    if (used + cost > budget)
                        return Remembered(kept, used);
                    used += cost;
                    kept.Add(turn);
                }
                if (chained && next is null)
                    return Remembered(kept, used);
            }
            if (page.Count < size)
                break;
        }
        return Remembered(kept, used);
    }

    /// <summary>A completed task's exchange: what was asked (a /chat message, or a response's input items), then the answer with its tool calls.</summary>
    static IReadOnlyList<ChatTurn>? Turn(TaskRecord task, StoredResponse? stored)
    {
        if (task is not { State: TaskState.Completed, Result: not null })
            return null;
        IReadOnlyList<ChatTurn>? asked = stored is not null ? stored.Input : task.Message is not null ? [new ChatTurn("user", task.Message)] : null;
        if (asked is null)
            return null;
        var calls = task.ToolCalls is null ? null : JsonSerializer.Deserialize<List<ToolCall>>(task.ToolCalls, CallJson);
        return [.. asked, new ChatTurn("assistant", task.Result) { ToolCalls = calls }];
    }

    static readonly JsonSerializerOptions CallJson = new(JsonSerializerDefaults.Web);

    /// <summary>The kept turns (newest first) as messages, oldest first.</summary>
    static Recalled Remembered(List<IReadOnlyList<ChatTurn>> newestFirst, int tokens) =>
        new([.. Enumerable.Reverse(newestFirst).SelectMany(t => t)], newestFirst.Count, tokens);
}
