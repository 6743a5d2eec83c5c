using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LlmStream.FakeOpenAI;

/// <summary>The HTTP handlers. JSON is written by hand so the wire shape is exactly OpenAI's.</summary>
internal sealed class FakeOpenAiEndpoints(FakeBehavior behavior, CancellationToken stopping)
{
    private static readonly TimeSpan MidStreamAbortGrace = TimeSpan.FromMilliseconds(100);
    private static readonly string[] Models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"];
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] DoneEvent = "data: [DONE]\n\n"u8.ToArray();

    public void Map(WebApplication app)
    {
        foreach (var prefix in new[] { "/v1", "" })
        {
            app.MapPost(prefix + "/chat/completions", (HttpContext ctx) => HandleChatAsync(ctx, null));
            app.MapPost(prefix + "/embeddings", (HttpContext ctx) => HandleEmbeddingsAsync(ctx, null));
            app.MapGet(prefix + "/models", HandleModelsAsync);
        }
        app.MapPost("/openai/deployments/{deployment}/chat/completions",
            (HttpContext ctx, string deployment) => HandleChatAsync(ctx, deployment));
        app.MapPost("/openai/deployments/{deployment}/embeddings",
            (HttpContext ctx, string deployment) => HandleEmbeddingsAsync(ctx, deployment));
        app.MapFallback((HttpContext ctx) => WriteErrorAsync(ctx, 404, $"Unknown path {ctx.Request.Method} {ctx.Request.Path}.", null));
    }

    // ---- chat ----

    private async Task HandleChatAsync(HttpContext ctx, string? deployment)
    {
        var aborted = ctx.RequestAborted;
        var apiKey = ApiKeyOf(ctx.Request);
        if (await ReadBodyAsync(ctx) is not { } body) return;
        var parsed = ChatBody.Parse(body, deployment);
        var record = new RecordedRequest(DateTimeOffset.UtcNow, ctx.Request.Path, ctx.Request.QueryString.Value ?? "", parsed?.Model, parsed?.Stream ?? false,
            body, parsed?.Messages ?? [], parsed?.HasTools ?? false, apiKey, HeadersOf(ctx.Request));
        behavior.RecordChat(record);

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, stopping);
        var serverAborted = false;
        try
        {
            if (!Authorized(apiKey))
            {
                await WriteErrorAsync(ctx, 401, "Incorrect API key provided.", null);
            }
            else if (parsed is null)
            {
                await WriteErrorAsync(ctx, 400, "We could not parse the JSON body of your request.", null);
            }
            else if (!behavior.Knows(parsed.Model))
            {
                await WriteModelNotFoundAsync(ctx, parsed.Model, deployment is not null);
            }
            else
            {
                serverAborted = await AnswerChatAsync(ctx, parsed, linked.Token);
            }
            if (!serverAborted) record.MarkCompleted();
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && linked.IsCancellationRequested)
        {
            // The client left, or the server is stopping.
            ctx.Abort();
        }
        finally
        {
            if (!serverAborted && !record.Completed && aborted.IsCancellationRequested)
            {
                behavior.MarkCancelled(record);
            }
        }
    }

    /// <summary>Writes the answer; returns true when a scripted mid-stream failure aborted the connection.</summary>
    private async Task<bool> AnswerChatAsync(HttpContext ctx, ChatBody request, CancellationToken ct)
    {
        var script = behavior.TakeChatScript(request.Stream);
        switch (script?.Kind)
        {
            case ChatScriptKind.Hang:
                await Task.Delay(Timeout.Infinite, ct);
                return false;
            case ChatScriptKind.Fail:
                await WriteErrorAsync(ctx, script.StatusCode, script.Message, script.RetryAfter);
                return false;
        }

        var settings = behavior.Snapshot();
        var lastUser = request.LastUserText;
        var toolCall = request.HasTools && request.LastRole == "user" && settings.ToolCall is { } decide
            ? decide(lastUser)
            : null;
        var abortAfter = script?.Kind == ChatScriptKind.MidStream ? script.AfterTokens : (int?)null;
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var promptTokens = request.Messages.Sum(m => FakeBehavior.CountWords(m.Content));

        if (toolCall is not null)
        {
            var parts = SplitArguments(toolCall.Arguments);
            var completionTokens = FakeBehavior.Tokenize(toolCall.Arguments).Count;
            var call = new ToolCallOut("call_" + Guid.NewGuid().ToString("N")[..24], toolCall.Name, toolCall.Arguments);
            if (!request.Stream)
            {
                await Task.Delay(settings.TokenDelay * parts.Count, ct);
                await WriteJsonAsync(ctx, 200, w => WriteCompletion(w, id, created, request.Model, null, call, "tool_calls",
                    promptTokens, completionTokens));
                return false;
            }
            return await StreamAsync(ctx, request, id, created, parts, call, "tool_calls", promptTokens, completionTokens,
                settings.FirstTokenDelay, settings.TokenDelay, abortAfter, false, ct);
        }

        var reply = settings.Reply(lastUser) ?? "";
        var tokens = FakeBehavior.Tokenize(reply);
        var finish = "stop";
        if (request.MaxTokens is { } max && tokens.Count > max)
        {
            tokens = tokens.Take(max).ToArray();
            reply = string.Concat(tokens);
            finish = "length";
        }
        var chunks = tokens.Chunk(settings.ChunkSize).Select(c => string.Concat(c)).ToArray();
        if (!request.Stream)
        {
            await Task.Delay(chunks.Length == 0 ? TimeSpan.Zero : settings.FirstTokenDelay + settings.TokenDelay * (chunks.Length - 1), ct);
            await WriteJsonAsync(ctx, 200, w => WriteCompletion(w, id, created, request.Model, reply, null, finish,
                promptTokens, tokens.Count));
            return false;
        }
        return await StreamAsync(ctx, request, id, created, chunks, null, finish, promptTokens, tokens.Count,
            settings.FirstTokenDelay, settings.TokenDelay, abortAfter, settings.StampTokens, ct);
    }

    private static async Task<bool> StreamAsync(HttpContext ctx, ChatBody request, string id, long created,
        IReadOnlyList<string> pieces, ToolCallOut? call, string finish, int promptTokens, int completionTokens,
        TimeSpan firstTokenDelay, TimeSpan tokenDelay, int? abortAfter, bool stampTokens, CancellationToken ct)
    {
        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var usageNull = request.IncludeUsage;

        // Opening chunk: the role (and for a tool call its id and name).
        await WriteEventAsync(response, w => WriteChunk(w, id, created, request.Model, usageNull, null, w2 =>
        {
            w2.WriteString("role", "assistant");
            if (call is null)
            {
                w2.WriteString("content", "");
            }
            else
            {
                w2.WriteNull("content");
                WriteToolCallDelta(w2, call.Id, call.Name, "");
            }
        }), ct);

        for (var i = 0; i < pieces.Count; i++)
        {
            if (abortAfter == i) return await AbortAsync(ctx, ct);
            var delay = i == 0 ? firstTokenDelay : tokenDelay;
            if (delay > TimeSpan.Zero) await Task.Delay(delay, ct);
            ct.ThrowIfCancellationRequested();
            var piece = stampTokens ? " " + System.Diagnostics.Stopwatch.GetTimestamp() : pieces[i];
            await WriteEventAsync(response, w => WriteChunk(w, id, created, request.Model, usageNull, null, w2 =>
            {
                if (call is null) w2.WriteString("content", piece);
                else WriteToolCallDelta(w2, null, null, piece);
            }), ct);
        }
        if (abortAfter is not null) return await AbortAsync(ctx, ct);

        await WriteEventAsync(response, w => WriteChunk(w, id, created, request.Model, usageNull, finish, _ => { }), ct);
        if (request.IncludeUsage)
        {
            await WriteEventAsync(response, w =>
            {
                WriteChunkHead(w, id, created, request.Model);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, promptTokens, completionTokens);
                w.WriteEndObject();
            }, ct);
        }
        await response.Body.WriteAsync(DoneEvent, ct);
        await response.Body.FlushAsync(ct);
        return false;
    }

    private static async Task<bool> AbortAsync(HttpContext ctx, CancellationToken ct)
    {
        // Abort resets the connection and drops output Kestrel has not yet sent; give the
        // chunks already flushed time to reach the client so it sees them before the reset.
        await Task.Delay(MidStreamAbortGrace, ct);
        ctx.Abort();
        return true;
    }

    private static List<string> SplitArguments(string arguments)
    {
        // Two or three pieces, as a real model streams arguments in fragments.
        var n = Math.Clamp(arguments.Length, 2, 3);
        var parts = new List<string>(n);
        for (var i = 0; i < n; i++)
        {
            var from = i * arguments.Length / n;
            var to = (i + 1) * arguments.Length / n;
            parts.Add(arguments[from..to]);
        }
        return parts;
    }

    private static void WriteCompletion(Utf8JsonWriter w, string id, long created, string model, string? content,
        ToolCallOut? call, string finish, int promptTokens, int completionTokens)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        if (content is null) w.WriteNull("content");
        else w.WriteString("content", content);
        w.WriteNull("refusal");
        if (call is not null)
        {
            w.WriteStartArray("tool_calls");
            w.WriteStartObject();
            w.WriteString("id", call.Id);
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", call.Name);
            w.WriteString("arguments", call.Arguments);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
        }
        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, promptTokens, completionTokens);
        w.WriteNull("system_fingerprint");
        w.WriteEndObject();
    }

    private static void WriteChunkHead(Utf8JsonWriter w, string id, long created, string model)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
    }

    private static void WriteChunk(Utf8JsonWriter w, string id, long created, string model, bool usageNull,
        string? finish, Action<Utf8JsonWriter> delta)
    {
        WriteChunkHead(w, id, created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        w.WriteNull("logprobs");
        if (finish is null) w.WriteNull("finish_reason");
        else w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
        // With include_usage, OpenAI sends "usage": null on every chunk but the last.
        if (usageNull) w.WriteNull("usage");
        w.WriteEndObject();
    }

    private static void WriteToolCallDelta(Utf8JsonWriter w, string? id, string? name, string arguments)
    {
        w.WriteStartArray("tool_calls");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (id is not null)
        {
            w.WriteString("id", id);
            w.WriteString("type", "function");
        }
        w.WriteStartObject("function");
        if (name is not null) w.WriteString("name", name);
        w.WriteString("arguments", arguments);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndArray();
    }

    private static void WriteUsage(Utf8JsonWriter w, int promptTokens, int completionTokens)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", promptTokens);
        w.WriteNumber("completion_tokens", completionTokens);
        w.WriteNumber("total_tokens", promptTokens + completionTokens);
        w.WriteEndObject();
    }

    // ---- embeddings ----

    private async Task HandleEmbeddingsAsync(HttpContext ctx, string? deployment)
    {
        var apiKey = ApiKeyOf(ctx.Request);
        if (await ReadBodyAsync(ctx) is not { } body) return;
        var parsed = EmbeddingBody.Parse(body, deployment);
        if (parsed is null) behavior.CountEmbeddingRequest();
        else behavior.RecordEmbeddings(parsed.Inputs, HeadersOf(ctx.Request));

        if (!Authorized(apiKey))
        {
            await WriteErrorAsync(ctx, 401, "Incorrect API key provided.", null);
            return;
        }
        if (parsed is null)
        {
            await WriteErrorAsync(ctx, 400, "'input' must be a string or an array of strings; 'dimensions' must be 1..4096.", null);
            return;
        }
        if (!behavior.Knows(parsed.Model))
        {
            await WriteModelNotFoundAsync(ctx, parsed.Model, deployment is not null);
            return;
        }
        if (behavior.TakeEmbeddingFailure() is { } status)
        {
            await WriteErrorAsync(ctx, status, null, null);
            return;
        }

        if (behavior.EmbeddingDelay > TimeSpan.Zero)
            await Task.Delay(behavior.EmbeddingDelay, ctx.RequestAborted);
        var words = parsed.Inputs.Sum(FakeBehavior.CountWords);
        await WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (var i = 0; i < parsed.Inputs.Count; i++)
            {
                var vector = FakeBehavior.EmbeddingOf(parsed.Inputs[i], parsed.Dimensions);
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (parsed.Base64)
                {
                    var bytes = new byte[vector.Length * sizeof(float)];
                    for (var j = 0; j < vector.Length; j++)
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(j * sizeof(float)), vector[j]);
                    }
                    w.WriteBase64String("embedding", bytes);
                }
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (var value in vector) w.WriteNumberValue(value);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("model", parsed.Model);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", words);
            w.WriteNumber("total_tokens", words);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    // ---- models ----

    private Task HandleModelsAsync(HttpContext ctx)
    {
        if (!Authorized(ApiKeyOf(ctx.Request))) return WriteErrorAsync(ctx, 401, "Incorrect API key provided.", null);
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        return WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var model in Models)
            {
                w.WriteStartObject();
                w.WriteString("id", model);
                w.WriteString("object", "model");
                w.WriteNumber("created", created);
                w.WriteString("owned_by", "fake");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    // ---- shared ----

    private bool Authorized(string? apiKey) =>
        behavior.RequiredApiKey is not { } required || string.Equals(apiKey, required, StringComparison.Ordinal);

    private static Dictionary<string, string> HeadersOf(HttpRequest request) =>
        request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);

    private static string? ApiKeyOf(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization[7..].Trim();
        var apiKey = request.Headers["api-key"].ToString();
        return apiKey.Length > 0 ? apiKey : null;
    }

    /// <summary>The body as text, or null when the client went away while sending it.</summary>
    private static async Task<string?> ReadBodyAsync(HttpContext ctx)
    {
        try
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            return await reader.ReadToEndAsync(ctx.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && ctx.RequestAborted.IsCancellationRequested)
        {
            return null;
        }
    }

    internal static Task WriteErrorAsync(HttpContext ctx, int status, string? message, TimeSpan? retryAfter)
    {
        var (type, code) = status switch
        {
            400 => ("invalid_request_error", (string?)null),
            401 => ("invalid_request_error", "invalid_api_key"),
            403 => ("permission_denied", null),
            404 => ("not_found_error", null),
            408 => ("timeout", null),
            429 => ("requests", "rate_limit_exceeded"),
            503 => ("server_error", "service_unavailable"),
            >= 500 => ("server_error", null),
            _ => ("invalid_request_error", null),
        };
        message ??= status switch
        {
            429 => "Rate limit reached (fake).",
            >= 500 => "The server had an error while processing your request (fake).",
            _ => $"Fake error {status}.",
        };
        if (retryAfter is { } wait)
        {
            // Retry-After is whole seconds; OpenAI and System.ClientModel also read retry-after-ms.
            ctx.Response.Headers.RetryAfter = ((int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            ctx.Response.Headers["retry-after-ms"] = ((long)wait.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return WriteJsonAsync(ctx, status, w =>
        {
            w.WriteStartObject();
            w.WriteStartObject("error");
            w.WriteString("message", message);
            w.WriteString("type", type);
            w.WriteNull("param");
            if (code is null) w.WriteNull("code");
            else w.WriteString("code", code);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    /// <summary>OpenAI's answer for a model it does not serve; Azure's for a deployment that does not exist.</summary>
    private static Task WriteModelNotFoundAsync(HttpContext ctx, string? model, bool azure) => WriteJsonAsync(ctx, 404, w =>
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        if (azure)
        {
            w.WriteString("code", "DeploymentNotFound");
            w.WriteString("message", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.");
        }
        else
        {
            w.WriteString("message", $"The model `{model}` does not exist or you do not have access to it.");
            w.WriteString("type", "invalid_request_error");
            w.WriteNull("param");
            w.WriteString("code", "model_not_found");
        }
        w.WriteEndObject();
        w.WriteEndObject();
    });

    private static async Task WriteJsonAsync(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength = buffer.WrittenCount;
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted);
    }

    private static async Task WriteEventAsync(HttpResponse response, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        buffer.Write(DataPrefix);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        buffer.Write(EventEnd);
        await response.Body.WriteAsync(buffer.WrittenMemory, ct);
        await response.Body.FlushAsync(ct);
    }

    private sealed record ToolCallOut(string Id, string Name, string Arguments);
}
