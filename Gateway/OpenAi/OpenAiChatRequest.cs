using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Messaging;

namespace LlmStream.Gateway.OpenAi;

/// <summary>The accepted subset of OpenAI's chat-completions request; anything else this gateway cannot honour is a 400.</summary>
public sealed record OpenAiChatRequest(
    string Model, IReadOnlyList<ChatTurn> Conversation, bool Stream, bool IncludeUsage, int Priority,
    float? Temperature, float? TopP, int? MaxTokens, IReadOnlyList<string>? Stop, string? User,
    IReadOnlyList<ToolDefinition>? Tools, string? ToolChoice,
    float? FrequencyPenalty = null, float? PresencePenalty = null, long? Seed = null, bool? ParallelToolCalls = null, string? ResponseFormat = null,
    string? ReasoningEffort = null, bool? Store = null, IReadOnlyDictionary<string, string>? Metadata = null)
{
    public readonly record struct Error(string Message, string? Param);

    static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>The parameters this gateway honours (or checks, like n); any other is refused, as OpenAI refuses one it does not know.</summary>
    static readonly HashSet<string> Known =
    [
        "model", "messages", "stream", "stream_options", "priority", "temperature", "top_p", "max_tokens", "max_completion_tokens",
        "stop", "user", "tools", "tool_choice", "n", "functions", "frequency_penalty", "presence_penalty", "seed",
        "parallel_tool_calls", "response_format", "reasoning_effort", "store", "metadata",
    ];

    /// <summary>Parameters accepted only with a value that asks for nothing this gateway would have to drop.</summary>
    static bool AsksForNothing(string name, JsonElement value) => value.ValueKind == JsonValueKind.Null || name switch
    {
        "logprobs" => value.ValueKind == JsonValueKind.False,
        "logit_bias" => value.ValueKind == JsonValueKind.Object && !value.EnumerateObject().Any(),
        "modalities" => value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text"),
        "service_tier" => value.ValueKind == JsonValueKind.String && value.GetString() is "auto" or "default",
        _ => false,
    };

    public static (OpenAiChatRequest? Request, Error? Error) Parse(JsonElement body, string? priorityHeader, string defaultModel) =>
        Parsing(() => Read(body, priorityHeader, defaultModel));

    /// <summary>A request read by <paramref name="read"/>, or the error that names what is wrong with it.</summary>
    internal static (T? Request, Error? Error) Parsing<T>(Func<T> read) where T : class
    {
        try
        {
            return (read(), null);
        }
        catch (InvalidRequest e)
        {
            return (null, new Error(e.Message, e.Param));
        }
        catch (InvalidOperationException)
        {
            return (null, new Error("the body contains text that is not valid UTF-8", null));
        }
    }

    internal sealed class InvalidRequest(string message, string? param) : Exception(message)
    {
        public string? Param { get; } = param;
    }

    static OpenAiChatRequest Read(JsonElement body, string? priorityHeader, string defaultModel)
    {
        if (body.ValueKind != JsonValueKind.Object)
            throw new InvalidRequest("the body must be a JSON object", null);
        foreach (var property in body.EnumerateObject())
        {
            if (!Known.Contains(property.Name) && !AsksForNothing(property.Name, property.Value))
                throw new InvalidRequest(property.Name is "logprobs" or "top_logprobs" or "logit_bias" or "modalities"
                        or "service_tier" or "function_call" or "audio" or "prediction" or "web_search_options" or "verbosity"
                    ? $"'{property.Name}' is not supported by this gateway"
                    : $"unrecognized request argument '{property.Name}'", property.Name);
        }
        if (body.TryGetProperty("functions", out var functions) && functions.ValueKind == JsonValueKind.Array && functions.GetArrayLength() > 0)
            throw new InvalidRequest("'functions' is deprecated by OpenAI and not supported: use 'tools'", "functions");
        if (body.TryGetProperty("n", out var n) && n.ValueKind != JsonValueKind.Null
            && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out var count) || count != 1))
            throw new InvalidRequest("only n=1 is supported", "n");

        var model = OptionalString(body, "model") ?? defaultModel;
        if (string.IsNullOrWhiteSpace(model) || model.Length > 200)
            throw new InvalidRequest("'model' must be a non-blank string of at most 200 characters", "model");
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw new InvalidRequest("'messages' must be a non-empty array of {role, content}", "messages");
        var conversation = new List<ChatTurn>();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var param = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{param} must be an object", param);
            var role = OptionalString(message, "role", param + ".role")
                ?? throw new InvalidRequest($"{param}.role is required", param + ".role");
            if (!Roles.Contains(role))
                throw new InvalidRequest($"{param}.role '{role}' is not supported (system, developer, user, assistant, tool)", param + ".role");
            var calls = role == "assistant" ? ReadToolCalls(message, param) : null;
            var content = calls is not null && (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) ? "" : Content(message, param);
            conversation.Add(new ChatTurn(role == "developer" ? "system" : role, content)
            {
                ToolCalls = calls,
                ToolCallId = role == "tool"
                    ? OptionalString(message, "tool_call_id", param + ".tool_call_id") ?? throw new InvalidRequest($"{param}.tool_call_id is required", param + ".tool_call_id")
                    : null,
            });
        }
        var tools = ReadTools(body);
        var toolChoice = ReadToolChoice(body, tools);

        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw new InvalidRequest("'stream' must be a boolean", "stream"),
        };
        var includeUsage = body.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object
            && options.TryGetProperty("include_usage", out var usage) && usage.ValueKind == JsonValueKind.True;

        var priority = ReadPriority(body, priorityHeader);

        var maxTokens = OptionalInt(body, "max_completion_tokens") ?? OptionalInt(body, "max_tokens");
        var stop = body.TryGetProperty("stop", out var st) ? st.ValueKind switch
        {
            JsonValueKind.String => [st.GetString()!],
            JsonValueKind.Array when st.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String) && st.GetArrayLength() <= 4 =>
                st.EnumerateArray().Select(x => x.GetString()!).ToList(),
            JsonValueKind.Null => null,
            _ => throw new InvalidRequest("'stop' must be a string or up to 4 strings", "stop"),
        } : (IReadOnlyList<string>?)null;

        var parallelToolCalls = OptionalBool(body, "parallel_tool_calls");
        long? seed = body.TryGetProperty("seed", out var sd) && sd.ValueKind != JsonValueKind.Null
            ? sd.ValueKind == JsonValueKind.Number && sd.TryGetInt64(out var seedValue) ? seedValue
                : throw new InvalidRequest("'seed' must be an integer", "seed")
            : null;

        return new OpenAiChatRequest(model, conversation, stream, includeUsage, priority,
            OptionalFloat(body, "temperature", 0, 2), OptionalFloat(body, "top_p", 0, 1), maxTokens, stop, OptionalString(body, "user"),
            tools, toolChoice,
            OptionalFloat(body, "frequency_penalty", -2, 2), OptionalFloat(body, "presence_penalty", -2, 2), seed, parallelToolCalls,
            ReadResponseFormat(body), ReadReasoningEffort(body), OptionalBool(body, "store"), ReadMetadata(body));
    }

    /// <summary>The body's priority field, else the X-Priority header, else 0.</summary>
    internal static int ReadPriority(JsonElement body, string? priorityHeader)
    {
        var priority = 0;
        if (body.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.Number || !p.TryGetInt32(out priority) || !WorkQueues.IsValidPriority(priority))
                throw new InvalidRequest("'priority' must be an integer between -10 and 10", "priority");
        }
        else if (priorityHeader is not null)
        {
            if (!WorkQueues.TryParsePriority(priorityHeader, "X-Priority header", out priority, out var invalid))
                throw new InvalidRequest(invalid!, "X-Priority");
        }
        return priority;
    }

    /// <summary>A level name such as low or high, passed on: providers add levels, and the provider answers for an unknown one.</summary>
    static string? ReadReasoningEffort(JsonElement body)
    {
        var effort = OptionalString(body, "reasoning_effort");
        if (effort is not null && (effort.Length is 0 or > 20 || !effort.All(char.IsAsciiLetterLower)))
            throw new InvalidRequest("'reasoning_effort' must be a level such as minimal, low, medium or high", "reasoning_effort");
        return effort;
    }

    /// <summary>OpenAI's limits: up to 16 pairs, keys up to 64 characters, values up to 512, all strings.</summary>
    internal static Dictionary<string, string>? ReadMetadata(JsonElement body)
    {
        if (!body.TryGetProperty("metadata", out var metadata) || metadata.ValueKind == JsonValueKind.Null)
            return null;
        const string Shape = "'metadata' must be an object of up to 16 string values, keys up to 64 characters and values up to 512";
        if (metadata.ValueKind != JsonValueKind.Object)
            throw new InvalidRequest(Shape, "metadata");
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in metadata.EnumerateObject())
        {
            if (pairs.Count == 16 || pair.Name.Length > 64 || pair.Value.ValueKind != JsonValueKind.String || pair.Value.GetString()!.Length > 512)
                throw new InvalidRequest(Shape, "metadata");
            pairs[pair.Name] = pair.Value.GetString()!;
        }
        return pairs.Count == 0 ? null : pairs;
    }

    internal static bool? OptionalBool(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : throw new InvalidRequest($"'{name}' must be a boolean", name);

    /// <summary>text, json_object, or json_schema with a name and an object schema; passed on as the client wrote it.</summary>
    static string? ReadResponseFormat(JsonElement body)
    {
        if (!body.TryGetProperty("response_format", out var format) || format.ValueKind == JsonValueKind.Null)
            return null;
        const string Shape = "'response_format' must be {type: \"text\"}, {type: \"json_object\"} or {type: \"json_schema\", json_schema: {name, schema, strict}}";
        if (format.ValueKind != JsonValueKind.Object)
            throw new InvalidRequest(Shape, "response_format");
        switch (OptionalString(format, "type", "response_format.type"))
        {
            case "text":
                return null;
            case "json_object":
                return format.GetRawText();
            case "json_schema":
                if (!format.TryGetProperty("json_schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                    throw new InvalidRequest("response_format.json_schema must be an object {name, schema, strict}", "response_format.json_schema");
                var name = OptionalString(schema, "name", "response_format.json_schema.name");
                if (string.IsNullOrEmpty(name) || name.Length > 64 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-'))
                    throw new InvalidRequest("response_format.json_schema.name must be 1 to 64 letters, digits, '_' or '-'", "response_format.json_schema.name");
                OptionalString(schema, "description", "response_format.json_schema.description");
                if (schema.TryGetProperty("schema", out var s) && s.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
                    throw new InvalidRequest("response_format.json_schema.schema must be a JSON schema object", "response_format.json_schema.schema");
                if (schema.TryGetProperty("strict", out var strict) && strict.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
                    throw new InvalidRequest("response_format.json_schema.strict must be a boolean", "response_format.json_schema.strict");
                return format.GetRawText();
            default:
                throw new InvalidRequest(Shape, "response_format.type");
        }
    }

    static List<ToolDefinition>? ReadTools(JsonElement body)
    {
        if (!body.TryGetProperty("tools", out var tools) || tools.ValueKind == JsonValueKind.Null)
            return null;
        if (tools.ValueKind != JsonValueKind.Array)
            throw new InvalidRequest("'tools' must be an array of {type: \"function\", function: {name, description, parameters}}", "tools");
        var list = new List<ToolDefinition>();
        var i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var param = $"tools[{i++}]";
            if (tool.ValueKind != JsonValueKind.Object || OptionalString(tool, "type", param + ".type") != "function"
                || !tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{param} must be {{type: \"function\", function: {{name, description, parameters}}}}", param);
            list.Add(ReadFunction(function, param + ".function"));
        }
        return list.Count == 0 ? null : list;
    }

    /// <summary>A function's declaration: its name, description and parameters' schema (an empty object schema when absent).</summary>
    /// <param name="param">Where it stands in the request (tools[0].function on chat completions, tools[0] on responses).</param>
    internal static ToolDefinition ReadFunction(JsonElement function, string param)
    {
        var name = OptionalString(function, "name", param + ".name");
        if (string.IsNullOrEmpty(name) || name.Length > 64 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-'))
            throw new InvalidRequest($"{param}.name must be 1 to 64 letters, digits, '_' or '-'", param + ".name");
        var parameters = function.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null ? p : default;
        if (parameters.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Object))
            throw new InvalidRequest($"{param}.parameters must be a JSON schema object", param + ".parameters");
        return new ToolDefinition(name, OptionalString(function, "description", param + ".description"),
            parameters.ValueKind == JsonValueKind.Object ? parameters.GetRawText() : "{\"type\":\"object\",\"properties\":{}}");
    }

    /// <summary>auto, none, required, or the name of a function in <paramref name="tools"/>; a 400 with <paramref name="shape"/> when there is no value.</summary>
    internal static string CheckToolChoice(string? value, IReadOnlyList<ToolDefinition>? tools, string shape)
    {
        if (value is null)
            throw new InvalidRequest(shape, "tool_choice");
        if (value is not ("auto" or "none" or "required") && tools?.Any(t => t.Name == value) != true)
            throw new InvalidRequest($"tool_choice names '{value}', which is not in 'tools'", "tool_choice");
        return value;
    }

    static string? ReadToolChoice(JsonElement body, List<ToolDefinition>? tools)
    {
        if (!body.TryGetProperty("tool_choice", out var choice) || choice.ValueKind == JsonValueKind.Null)
            return null;
        return CheckToolChoice(choice.ValueKind switch
        {
            JsonValueKind.String when choice.GetString() is "auto" or "none" or "required" => choice.GetString(),
            JsonValueKind.Object when choice.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object => OptionalString(f, "name", "tool_choice.function.name"),
            _ => null,
        }, tools, "'tool_choice' must be auto, none, required or {type: \"function\", function: {name}}");
    }

    static List<ToolCall>? ReadToolCalls(JsonElement message, string param)
    {
        if (!message.TryGetProperty("tool_calls", out var calls) || calls.ValueKind == JsonValueKind.Null)
            return null;
        if (calls.ValueKind != JsonValueKind.Array)
            throw new InvalidRequest($"{param}.tool_calls must be an array", param + ".tool_calls");
        var list = new List<ToolCall>();
        var i = 0;
        foreach (var call in calls.EnumerateArray())
        {
            var p = $"{param}.tool_calls[{i++}]";
            if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                throw new InvalidRequest($"{p} must be {{id, type: \"function\", function: {{name, arguments}}}}", p);
            var id = OptionalString(call, "id", p + ".id") ?? throw new InvalidRequest($"{p}.id is required", p + ".id");
            var name = OptionalString(f, "name", p + ".function.name") ?? throw new InvalidRequest($"{p}.function.name is required", p + ".function.name");
            var arguments = OptionalString(f, "arguments", p + ".function.arguments") ?? "{}";
            try
            {
                using var parsed = JsonDocument.Parse(string.IsNullOrWhiteSpace(arguments) ? "{}" : arguments);
                if (parsed.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidRequest($"{p}.function.arguments must be a JSON object in a string", p + ".function.arguments");
            }
            catch (JsonException)
            {
                throw new InvalidRequest($"{p}.function.arguments must be a JSON object in a string", p + ".function.arguments");
            }
            list.Add(new ToolCall(id, name, arguments));
        }
        return list.Count == 0 ? null : list;
    }

    static string Content(JsonElement message, string param)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
            throw new InvalidRequest($"{param}.content is required", param + ".content");
        if (content.ValueKind == JsonValueKind.String)
            return content.GetString()!;
        if (content.ValueKind == JsonValueKind.Array)
        {
            var text = new System.Text.StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || OptionalString(part, "type") != "text" || OptionalString(part, "text") is not { } t)
                    throw new InvalidRequest($"{param}.content parts must be {{type: \"text\", text}} (other parts are not supported)", param + ".content");
                text.Append(t);
            }
            return text.ToString();
        }
        throw new InvalidRequest($"{param}.content must be a string or an array of text parts", param + ".content");
    }

    internal static string? OptionalString(JsonElement body, string name, string? param = null) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw new InvalidRequest($"'{param ?? name}' must be a string", param ?? name);

    internal static int? OptionalInt(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i > 0 ? i
        : throw new InvalidRequest($"'{name}' must be a positive integer", name);

    internal static float? OptionalFloat(JsonElement body, string name, float min, float max) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetSingle(out var f) && f >= min && f <= max ? f
        : throw new InvalidRequest($"'{name}' must be a number between {min} and {max}", name);
}
