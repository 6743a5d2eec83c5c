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

    static readonly int[] ReadSizes = [4, 32, TaskStoreLimits.TurnsKept];

    /// <summary>The latest turns that fit the budget, oldest first, their tokens, and whether the budget stopped them.</summary>
    (List<TaskRecord> Kept, int Used, bool Filled) Fit(string model, IReadOnlyList<TaskRecord> earlier, int budget)
    {
        var kept = new List<TaskRecord>();
        var used = 0;
        for (var i = earlier.Count - 1; i >= 0; i--)
        {
            var task = earlier[i];
            if (task is not { State: TaskState.Completed, Message: not null, Result: not null })
                continue;
            var cost = tokens.Count(model, [task.Message, task.Result]);
            if (used + cost > budget)
            {
                kept.Reverse();
                return (kept, used, true);
            }
            used += cost;
            kept.Add(task);
        }
        kept.Reverse();
        return (kept, used, false);
    }

    public async Task<Recalled> RecallAsync(ChatRequested request, int promptTokens, int completionTokens, CancellationToken cancellationToken)
    {
        if (request.Conversation is not null || request.History == false)
            return Recalled.Nothing;
        var budget = Math.Min(options.Value.HistoryBudget(request.Model), models.Value.ContextLimit(request.Model) - promptTokens - completionTokens);
        if (budget <= 0)
            return Recalled.Nothing;

        // Read from the newest back, a few turns first: a session of long messages fills the budget with its latest
        // turns, and older records (up to a megabyte of message each) are never read.
        foreach (var count in ReadSizes)
        {
            var earlier = await store.EarlierTasksAsync(request.SessionId, request.TaskId, count, cancellationToken);
            var (kept, used, filled) = Fit(request.Model, earlier, budget);
            if (filled || earlier.Count < count || count == TaskStoreLimits.TurnsKept)
                return new Recalled([.. kept.SelectMany(t => new[] { new ChatTurn("user", t.Message!), new ChatTurn("assistant", t.Result!) })], kept.Count, used);
        }
        return Recalled.Nothing;
    }
}
