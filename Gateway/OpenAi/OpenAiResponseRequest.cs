using System.Text;
using System.Text.Json;
using LlmStream.Contracts;
using static LlmStream.Gateway.OpenAi.OpenAiChatRequest;

namespace LlmStream.Gateway.OpenAi;

/// <summary>
/// The accepted subset of OpenAI's Responses API request (POST /v1/responses): text in, text and function calls out.
/// Anything else this gateway cannot honour is a 400 naming the parameter, as OpenAI names one it does not know.
/// </summary>
public sealed record OpenAiResponseRequest(
    string Model, IReadOnlyList<ChatTurn> Input, string? Instructions, bool Stream, bool Background, bool Store, int Priority,
    float? Temperature, float? TopP, int? MaxOutputTokens, IReadOnlyList<ToolDefinition>? Tools, string? ToolsJson,
    string? ToolChoice, string? ToolChoiceJson, bool? ParallelToolCalls, IReadOnlyDictionary<string, string>? Metadata,
    string? PreviousResponseId, string? User)
{
    /// <summary>The metadata key that sets a response's priority (-10 to 10), for SDKs that send no custom header.</summary>
    public const string PriorityKey = "priority";

    static readonly HashSet<string> Known =
    [
        "model", "input", "instructions", "temperature", "top_p", "max_output_tokens", "tools", "tool_choice", "parallel_tool_calls",
        "stream", "background", "store", "metadata", "previous_response_id", "user", "priority", "stream_options",
    ];

    /// <summary>Parameters accepted only with a value that asks for nothing this gateway would have to drop.</summary>
    static bool AsksForNothing(string name, JsonElement value) => value.ValueKind == JsonValueKind.Null || name switch
    {
        "text" => value.ValueKind == JsonValueKind.Object && value.EnumerateObject().All(p => p.Name == "format" && p.Value.ValueKind == JsonValueKind.Object
            && p.Value.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "text"),
        "truncation" => value.ValueKind == JsonValueKind.String && value.GetString() == "disabled",
        "include" => value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 0,
        "reasoning" => value.ValueKind == JsonValueKind.Object && !value.EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.Null),
        "service_tier" => value.ValueKind == JsonValueKind.String && value.GetString() is "auto" or "default",
        _ => false,
    };

    public static (OpenAiResponseRequest? Request, Error? Error) Parse(JsonElement body, string? priorityHeader, string defaultModel) =>
        Parsing(() => Read(body, priorityHeader, defaultModel));

    static OpenAiResponseRequest Read(JsonElement body, string? priorityHeader, string defaultModel)
    {
        if (body.ValueKind != JsonValueKind.Object)
            throw new InvalidRequest("the body must be a JSON object", null);
        foreach (var property in body.EnumerateObject())
        {
            if (!Known.Contains(property.Name) && !AsksForNothing(property.Name, property.Value))
                throw new InvalidRequest(property.Name is "text" or "truncation" or "include" or "reasoning" or "service_tier" or "conversation"
                        or "prompt" or "top_logprobs" or "max_tool_calls" or "prompt_cache_key" or "safety_identifier"
                    ? $"'{property.Name}' is not supported by this gateway"
                    : $"unrecognized request argument '{property.Name}'", property.Name);
        }

        var model = OptionalString(body, "model") ?? defaultModel;
        if (string.IsNullOrWhiteSpace(model) || model.Length > 200)
            throw new InvalidRequest("'model' must be a non-blank string of at most 200 characters", "model");
        var input = ReadInput(body);
        var metadata = ReadMetadata(body);
        var (tools, toolsJson) = ReadTools(body);
        var (toolChoice, toolChoiceJson) = ReadToolChoice(body, tools);
        var stream = OptionalBool(body, "stream") ?? false;
        var background = OptionalBool(body, "background") ?? false;
        var store = OptionalBool(body, "store") ?? true;
        if (background && !store)
            throw new InvalidRequest("a background response must be stored: 'store' cannot be false with 'background': true", "store");
        var previous = OptionalString(body, "previous_response_id");
        if (previous is not null && !previous.StartsWith(ResponseIds.Prefix, StringComparison.Ordinal))
            throw new InvalidRequest($"'previous_response_id' must be the id of a response (resp_...), not '{previous}'", "previous_response_id");

        return new OpenAiResponseRequest(model, input, OptionalString(body, "instructions"), stream, background, store,
            ReadPriority(body, metadata, priorityHeader),
            OptionalFloat(body, "temperature", 0, 2), OptionalFloat(body, "top_p", 0, 1), OptionalInt(body, "max_output_tokens"),
            tools, toolsJson, toolChoice, toolChoiceJson, OptionalBool(body, "parallel_tool_calls"), metadata, previous, OptionalString(body, "user"));
    }

    /// <summary>The body's priority, else metadata's "priority", else the X-Priority header, else 0.</summary>
    static int ReadPriority(JsonElement body, Dictionary<string, string>? metadata, string? priorityHeader)
    {
        if (metadata?.GetValueOrDefault(PriorityKey) is { } text && !(body.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null))
        {
            if (!Messaging.WorkQueues.TryParsePriority(text, "metadata.priority", out var priority, out var invalid))
                throw new InvalidRequest(invalid!, "metadata.priority");
            return priority;
        }
        return OpenAiChatRequest.ReadPriority(body, priorityHeader);
    }

    /// <summary>A string (one user message) or a list of message, function_call and function_call_output items.</summary>
    static List<ChatTurn> ReadInput(JsonElement body)
    {
        if (!body.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
            throw new InvalidRequest("'input' is required: a string, or a list of input items", "input");
        if (input.ValueKind == JsonValueKind.String)
            return input.GetString() is { Length: > 0 } text ? [new ChatTurn("user", text)] : throw new InvalidRequest("'input' must not be empty", "input");
        if (input.ValueKind != JsonValueKind.Array || input.GetArrayLength() == 0)
            throw new InvalidRequest("'input' must be a string or a non-empty list of input items", "input");
        var turns = new List<ChatTurn>();
        var index = 0;
        foreach (var item in input.EnumerateArray())
        {
            var param = $"input[{index++}]";
            if (item.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{param} must be an object", param);
            var type = OptionalString(item, "type", param + ".type") ?? "message";
            switch (type)
            {
                case "message":
                    var role = OptionalString(item, "role", param + ".role") ?? throw new InvalidRequest($"{param}.role is required", param + ".role");
                    if (role is not ("user" or "assistant" or "system" or "developer"))
                        throw new InvalidRequest($"{param}.role '{role}' is not supported (user, assistant, system, developer)", param + ".role");
                    turns.Add(new ChatTurn(role == "developer" ? "system" : role, Content(item, param, role == "assistant" ? "output_text" : "input_text")));
                    break;
                case "function_call":
                    var call = new ToolCall(
                        OptionalString(item, "call_id", param + ".call_id") ?? throw new InvalidRequest($"{param}.call_id is required", param + ".call_id"),
                        OptionalString(item, "name", param + ".name") ?? throw new InvalidRequest($"{param}.name is required", param + ".name"),
                        Arguments(OptionalString(item, "arguments", param + ".arguments"), param + ".arguments"));
                    // The calls of one model turn come as consecutive items: one assistant message holds them all.
                    if (turns.Count > 0 && turns[^1] is { Role: "assistant", ToolCalls: { } earlier })
                        turns[^1] = turns[^1] with { ToolCalls = [.. earlier, call] };
                    else
                        turns.Add(new ChatTurn("assistant", "") { ToolCalls = [call] });
                    break;
                case "function_call_output":
                    var callId = OptionalString(item, "call_id", param + ".call_id") ?? throw new InvalidRequest($"{param}.call_id is required", param + ".call_id");
                    var output = item.TryGetProperty("output", out var o) && o.ValueKind == JsonValueKind.String ? o.GetString()!
                        : item.TryGetProperty("output", out o) && o.ValueKind == JsonValueKind.Array ? Content(item, param, "input_text", "output")
                        : throw new InvalidRequest($"{param}.output must be a string", param + ".output");
                    turns.Add(new ChatTurn("tool", output) { ToolCallId = callId });
                    break;
                default:
                    throw new InvalidRequest($"{param}.type '{type}' is not supported by this gateway (message, function_call, function_call_output)", param + ".type");
            }
        }
        return turns;
    }

    static string Arguments(string? arguments, string param)
    {
        try
        {
            using var parsed = JsonDocument.Parse(string.IsNullOrWhiteSpace(arguments) ? "{}" : arguments);
            if (parsed.RootElement.ValueKind == JsonValueKind.Object)
                return arguments ?? "{}";
        }
        catch (JsonException)
        {
        }
        throw new InvalidRequest($"{param} must be a JSON object in a string", param);
    }

    /// <summary>A string, or text parts (input_text; output_text for the assistant's): images, files and audio are not supported.</summary>
    static string Content(JsonElement item, string param, string partType, string name = "content")
    {
        if (!item.TryGetProperty(name, out var content) || content.ValueKind == JsonValueKind.Null)
            throw new InvalidRequest($"{param}.{name} is required", $"{param}.{name}");
        if (content.ValueKind == JsonValueKind.String)
            return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array)
            throw new InvalidRequest($"{param}.{name} must be a string or a list of {partType} parts", $"{param}.{name}");
        var text = new StringBuilder();
        var i = 0;
        foreach (var part in content.EnumerateArray())
        {
            var partParam = $"{param}.{name}[{i++}]";
            var type = part.ValueKind == JsonValueKind.Object ? OptionalString(part, "type", partParam + ".type") : null;
            if (type is not ("input_text" or "output_text") || OptionalString(part, "text", partParam + ".text") is not { } t)
                throw new InvalidRequest($"{partParam} must be {{type: \"{partType}\", text}}: '{type}' parts are not supported by this gateway", partParam);
            text.Append(t);
        }
        return text.ToString();
    }

    /// <summary>Function tools ({type: "function", name, description, parameters, strict}), and the list as it came.</summary>
    static (List<ToolDefinition>?, string?) ReadTools(JsonElement body)
    {
        if (!body.TryGetProperty("tools", out var tools) || tools.ValueKind == JsonValueKind.Null)
            return (null, null);
        if (tools.ValueKind != JsonValueKind.Array)
            throw new InvalidRequest("'tools' must be a list of {type: \"function\", name, description, parameters}", "tools");
        var list = new List<ToolDefinition>();
        var i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var param = $"tools[{i++}]";
            if (tool.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{param} must be {{type: \"function\", name, description, parameters}}", param);
            var type = OptionalString(tool, "type", param + ".type");
            if (type != "function")
                throw new InvalidRequest($"{param}.type '{type}' is not supported by this gateway: only function tools are", param + ".type");
            OptionalBool(tool, "strict");
            list.Add(ReadFunction(tool, param));
        }
        return list.Count == 0 ? (null, null) : (list, tools.GetRawText());
    }

    static (string?, string?) ReadToolChoice(JsonElement body, List<ToolDefinition>? tools)
    {
        if (!body.TryGetProperty("tool_choice", out var choice) || choice.ValueKind == JsonValueKind.Null)
            return (null, null);
        var value = CheckToolChoice(choice.ValueKind switch
        {
            JsonValueKind.String when choice.GetString() is "auto" or "none" or "required" => choice.GetString(),
            JsonValueKind.Object when OptionalString(choice, "type", "tool_choice.type") == "function" => OptionalString(choice, "name", "tool_choice.name"),
            _ => null,
        }, tools, "'tool_choice' must be auto, none, required or {type: \"function\", name}");
        return (value, choice.GetRawText());
    }
}

/// <summary>The ids a response and its output items go by: each is its task's id with OpenAI's prefix.</summary>
public static class ResponseIds
{
    public const string Prefix = "resp_";

    public static string Of(string taskId) => Prefix + taskId;

    /// <summary>The task of a response id; null for an id that is no response's.</summary>
    public static string? TaskOf(string responseId) =>
        responseId.StartsWith(Prefix, StringComparison.Ordinal) && Access.Ids.IsValidClientId(responseId[Prefix.Length..]) ? responseId[Prefix.Length..] : null;

    public static string Message(string taskId) => "msg_" + taskId;

    public static string FunctionCall(string taskId, int index) => $"fc_{taskId}_{index}";
}
