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

    public async Task<Recalled> RecallAsync(ChatRequested request, int promptTokens, int completionTokens, CancellationToken cancellationToken)
    {
        if (request.Conversation is not null || request.History == false)
            return Recalled.Nothing;
        var budget = Math.Min(options.Value.HistoryBudget(request.Model), models.Value.ContextLimit(request.Model) - promptTokens - completionTokens);
        if (budget <= 0)
            return Recalled.Nothing;

        var earlier = await store.EarlierTasksAsync(request.SessionId, request.TaskId, TaskStoreLimits.TurnsKept, cancellationToken);
        var kept = new List<TaskRecord>();
        var used = 0;
        for (var i = earlier.Count - 1; i >= 0; i--)
        {
            var task = earlier[i];
            if (task is not { State: TaskState.Completed, Message: not null, Result: not null })
                continue;
            var cost = tokens.Count(request.Model, [task.Message, task.Result]);
            if (used + cost > budget)
                break;
            used += cost;
            kept.Add(task);
        }
        kept.Reverse();
        return new Recalled([.. kept.SelectMany(t => new[] { new ChatTurn("user", t.Message!), new ChatTurn("assistant", t.Result!) })], kept.Count, used);
    }
}
