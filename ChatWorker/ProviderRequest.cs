using System.Text.Json;
using LlmStream.Contracts;
using Microsoft.Extensions.AI;

namespace LlmStream.ChatWorker;

/// <summary>A chat request in Microsoft.Extensions.AI's terms: the messages and the options the provider call takes.</summary>
public static class ProviderRequest
{
    /// <summary>
    /// The system prompt (a response's instructions), the session's earlier turns (oldest first), then the message or
    /// the /v1 conversation.
    /// </summary>
    public static List<ChatMessage> Messages(ChatRequested request, IReadOnlyList<ChatTurn>? history = null)
    {
        var messages = new List<ChatMessage>(2 + (history?.Count ?? 0) + (request.Conversation?.Count ?? 0));
        if (!string.IsNullOrWhiteSpace(request.SystemPrompt))
            messages.Add(new ChatMessage(ChatRole.System, request.SystemPrompt));
        if (history is not null)
            messages.AddRange(history.Select(Message));
        if (request.Conversation is { Count: > 0 } conversation)
            messages.AddRange(conversation.Select(Message));
        else
            messages.Add(new ChatMessage(ChatRole.User, request.Message));
        return messages;
    }

    public static ChatOptions? Options(ChatRequested request)
    {
        if (request is { Temperature: null, TopP: null, MaxTokens: null, Stop: null, Tools: null, FrequencyPenalty: null, PresencePenalty: null,
                Seed: null, ParallelToolCalls: null, ResponseFormat: null, ReasoningEffort: null, Store: null, Metadata: null, EndUserId: null })
            return null;
        var jsonSchema = JsonSchemaFormat(request.ResponseFormat);
        var needsOpenAiOptions = jsonSchema is not null || request.ReasoningEffort is not null || request.Store is not null
            || request.Metadata is not null || request.EndUserId is not null;
        return new ChatOptions
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            Seed = request.Seed,
            AllowMultipleToolCalls = request.ParallelToolCalls,
            ResponseFormat = request.ResponseFormat is not null && jsonSchema is null ? ChatResponseFormat.Json : null,
            RawRepresentationFactory = needsOpenAiOptions ? _ => OpenAiOptions(request, jsonSchema) : null,
            MaxOutputTokens = request.MaxTokens,
            StopSequences = request.Stop is null ? null : [.. request.Stop],
            // Declarations only: the caller runs its functions, as with OpenAI itself.
            Tools = request.Tools is null ? null : [.. request.Tools.Select(t =>
                AIFunctionFactory.CreateDeclaration(t.Name, t.Description, JsonDocument.Parse(t.Parameters).RootElement.Clone()))],
            ToolMode = request.ToolChoice switch
            {
                null => null,
                "auto" => ChatToolMode.Auto,
                "none" => ChatToolMode.None,
                "required" => ChatToolMode.RequireAny,
                var name => ChatToolMode.RequireSpecific(name),
            },
        };
    }

    /// <summary>A json_schema response_format (checked by the gateway) as the OpenAI SDK's format, with its strict flag; null for any other.</summary>
    static OpenAI.Chat.ChatResponseFormat? JsonSchemaFormat(string? responseFormat)
    {
        if (responseFormat is null)
            return null;
        using var document = JsonDocument.Parse(responseFormat);
        if (document.RootElement.GetProperty("type").GetString() != "json_schema")
            return null;
        var schema = document.RootElement.GetProperty("json_schema");
        return OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat(
            schema.GetProperty("name").GetString()!,
            BinaryData.FromString(schema.TryGetProperty("schema", out var body) && body.ValueKind == JsonValueKind.Object ? body.GetRawText() : "{}"),
            schema.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null,
            schema.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null);
    }

    /// <summary>
    /// What Microsoft.Extensions.AI's options have no place for, set on the OpenAI SDK's own options, which it starts
    /// from: a json_schema's strict flag (what makes the provider hold to the schema), reasoning_effort, store, metadata
    /// and the end user's id.
    /// </summary>
    static OpenAI.Chat.ChatCompletionOptions OpenAiOptions(ChatRequested request, OpenAI.Chat.ChatResponseFormat? jsonSchema)
    {
        var options = new OpenAI.Chat.ChatCompletionOptions { ResponseFormat = jsonSchema };
#pragma warning disable OPENAI001 // the SDK marks reasoning effort as experimental
        if (request.ReasoningEffort is { } effort)
            options.ReasoningEffortLevel = new OpenAI.Chat.ChatReasoningEffortLevel(effort);
#pragma warning restore OPENAI001
        options.StoredOutputEnabled = request.Store;
        options.EndUserId = request.EndUserId;
        foreach (var (key, value) in request.Metadata ?? new Dictionary<string, string>())
            options.Metadata[key] = value;
        return options;
    }

    static ChatMessage Message(ChatTurn turn)
    {
        if (turn.Role == "tool")
            return new ChatMessage(ChatRole.Tool, [new FunctionResultContent(turn.ToolCallId ?? "", turn.Content)]);
        if (turn.ToolCalls is not { Count: > 0 } calls)
            return new ChatMessage(new ChatRole(turn.Role), turn.Content);
        var contents = new List<AIContent>();
        if (turn.Content.Length > 0)
            contents.Add(new TextContent(turn.Content));
        foreach (var call in calls)
            contents.Add(new FunctionCallContent(call.Id, call.Name,
                JsonSerializer.Deserialize<Dictionary<string, object?>>(string.IsNullOrWhiteSpace(call.Arguments) ? "{}" : call.Arguments)));
        return new ChatMessage(ChatRole.Assistant, contents);
    }
}
