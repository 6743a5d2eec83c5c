using LlmStream.Contracts;
using LlmStream.Providers;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

/// <summary>
/// What a /chat task's session said before it: the earlier turns (each the user's message and the answer that
/// completed it), read from the task records the store keeps anyway. Newest first into the model's budget
/// (HISTORY_TOKENS, HISTORY_MODEL_TOKENS, and never more than the context window leaves), counted with the rate limiter's
/// tokenizer, then sent oldest first: when they do not all fit, the oldest are the ones dropped. A task that failed or
/// was cancelled is not a turn: its message had no answer.
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
        if (request.Conversation is not null || request.History == false)
            return Recalled.Nothing;
        var budget = Math.Min(options.Value.HistoryBudget(request.Model), models.Value.ContextLimit(request.Model) - promptTokens - completionTokens);
        if (budget <= 0)
            return Recalled.Nothing;

        // Newest first, a few records first: a session of long messages fills the budget with its latest turns, and
        // older records (up to a megabyte of message each) are never read. Each record is read and counted once.
        var kept = new List<TaskRecord>();
        var used = 0;
        var read = 0;
        foreach (var size in PageSizes)
        {
            var page = await store.EarlierTasksAsync(request.SessionId, request.TaskId, read, size, cancellationToken);
            read += size;
            for (var i = page.Count - 1; i >= 0; i--)
            {
                if (page[i] is not { State: TaskState.Completed, Message: not null, Result: not null } task)
                    continue;
                var cost = tokens.Count(request.Model, [task.Message, task.Result]);
                if (used + cost > budget)
                    return Remembered(kept, used);
                used += cost;
                kept.Add(task);
            }
            if (page.Count < size)
                break;
        }
        return Remembered(kept, used);
    }

    /// <summary>The kept turns (newest first) as messages, oldest first.</summary>
    static Recalled Remembered(List<TaskRecord> newestFirst, int tokens) =>
        new([.. Enumerable.Reverse(newestFirst).SelectMany(t => new[] { new ChatTurn("user", t.Message!), new ChatTurn("assistant", t.Result!) })], newestFirst.Count, tokens);
}
