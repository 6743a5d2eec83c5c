using LlmStream.Contracts;
using LlmStream.Providers;
using LlmStream.Providers.RateLimiting;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Intake;

/// <summary>Why a prompt is refused before anything is queued: OpenAI's code for it and the parameter at fault.</summary>
public sealed record PromptRefusal(string Code, string Param, string Message);

/// <summary>
/// Counts a chat's prompt once, here, in time linear in its length (the count travels in the message, so no worker
/// spends time on it), and refuses what could never be answered: a prompt over the model's context window, or a
/// request larger than a whole minute of the token limit (the provider would refuse it too, and in the cluster's
/// buckets it would hold every other request back for longer than a minute).
/// </summary>
public sealed class PromptBudget(PromptTokens tokens, IOptions<ModelOptions> models, IOptions<RateLimitOptions> limits)
{
    /// <summary>Prompts this long or longer take turns to be counted, so that together they hold one core at most; embedding
    /// inputs this long are counted on the thread pool too.</summary>
    public const int LongPrompt = 32 * 1024;

    readonly SemaphoreSlim _longPrompts = new(1, 1);

    /// <param name="promptParam">What names the prompt in the API's words: message (/chat) or messages (/v1).</param>
    public async Task<(int Tokens, PromptRefusal? Refusal)> CheckAsync(ChatRequested request, string promptParam, CancellationToken cancellationToken)
    {
        if (ChatPrompt.Texts(request).Sum(t => t.Length) < LongPrompt)
            return Check(request, promptParam);
        // Counting a megabyte takes a core for half a second: long prompts wait for each other, not short ones for them,
        // and never on the socket thread that read the request (the gateway schedules request work inline).
        await Task.Yield();
        await _longPrompts.WaitAsync(cancellationToken);
        try
        {
            return Check(request, promptParam);
        }
        finally
        {
            _longPrompts.Release();
        }
    }

    (int Tokens, PromptRefusal? Refusal) Check(ChatRequested request, string promptParam)
    {
        var count = tokens.CountPrompt(request);
        var context = models.Value.ContextLimit(request.Model);
        if (count > context)
            return (count, new PromptRefusal("context_length_exceeded", promptParam,
                $"This model's maximum context length is {context} tokens, but the prompt has {count} tokens; shorten {promptParam} " +
                "(LLM_CONTEXT_TOKENS and LLM_MODEL_CONTEXT_TOKENS set the limits)."));
        if (request.MaxTokens is { } max && count + max > context)
            return (count, new PromptRefusal("context_length_exceeded", "max_tokens",
                $"This model's maximum context length is {context} tokens: the prompt's {count} tokens and max_tokens={max} do not fit; lower max_tokens."));

        var reserved = count + limits.Value.ExpectedCompletionTokens;
        foreach (var bucket in RateBucket.For(request.Model, limits.Value))
        {
            if (bucket.Kind == "tokens" && reserved > bucket.PerMinute)
                return (count, new PromptRefusal("request_too_large", promptParam,
                    $"The request needs {reserved} tokens (a prompt of {count} and {limits.Value.ExpectedCompletionTokens} expected for the answer), " +
                    $"more than the {bucket.PerMinute:0} tokens a minute the {(bucket.Scope == "global" ? "token limit (LLM_TPM)" : "model's limit (LLM_MODEL_LIMITS)")} allows: " +
                    "it could never be sent; shorten it."));
        }
        return (count, null);
    }
}
