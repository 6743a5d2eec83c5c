using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Embeddings;
using LlmStream.Gateway.Intake;
using LlmStream.Messaging;
using LlmStream.Providers;
using LlmStream.Sessions.Embeddings;
using LlmStream.Sessions.Streams;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.OpenAi;

/// <summary>
/// POST /v1/embeddings: OpenAI's embeddings API in front of the embedding workers. The batch is queued like
/// POST /embeddings; the request waits (woken by the task's end, not polling) and answers in OpenAI's format.
/// </summary>
public static class OpenAiEmbeddingsApi
{
    static readonly HashSet<string> Known = ["input", "model", "encoding_format", "dimensions", "user"];

    public static RouteGroupBuilder MapOpenAiEmbeddings(this RouteGroupBuilder v1)
    {
        v1.MapPost("/embeddings", CreateEmbeddings)
            .WithSummary("Create embeddings (queued to the embedding workers; X-Priority header for priority)");
        return v1;
    }

    static async Task CreateEmbeddings(HttpContext http, EmbeddingIntake intake, Outages outages, IEmbeddingStore store, StreamSignals signals,
        PromptTokens tokens, IOptions<EmbeddingOptions> limits, IOptions<ModelOptions> models, ModelCatalog catalog, TimeProvider clock)
    {
        var (body, problem) = await JsonBody.ReadObjectAsync(http.Request, limits.Value.MaxRequestBytes, http.RequestAborted);
        if (problem is not null)
        {
            await OpenAiError.WriteAsync(http, problem.StatusCode, problem.ProblemDetails.Detail ?? "invalid request body", null);
            return;
        }
        var (request, error) = Parse(body, http.Request.Headers["X-Priority"].FirstOrDefault(), limits.Value, models.Value.EmbeddingModel);
        if (request is null)
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest, error!.Value.Message, error.Value.Param);
            return;
        }
        if (!catalog.Serves(request.Model!))
        {
            await OpenAiError.ModelNotFoundAsync(http, request.Model!);
            return;
        }
        var (counts, tooLong) = await EmbeddingInput.CountAsync(request.Texts, request.Model!, limits.Value.MaxTextTokens, tokens);
        if (tooLong is not null)
        {
            await OpenAiError.WriteAsync(http, StatusCodes.Status400BadRequest,
                $"input[{tooLong.Value.Index}] has {tooLong.Value.Tokens} tokens; {request.Model} accepts at most {limits.Value.MaxTextTokens} per input", "input");
            return;
        }

        var message = new EmbedBatchRequested
        {
            TaskId = outages.NewId(),
            Texts = request.Texts,
            Model = request.Model!,
            Priority = request.Priority ?? 0,
            Dimensions = request.Dimensions,
            TextTokens = counts,
            ApiKeyName = http.ApiKeyName(),
            AcceptedAt = clock.GetUtcNow(),
        };
        // Watch before submitting, so the end of a fast batch cannot slip past.
        using var watch = await signals.WatchAsync(EmbeddingWake.Key(message.TaskId), message.TaskId);
        var outcome = (await intake.SubmitAsync(message)).Outcome;
        if (outcome != IntakeOutcome.Accepted)
        {
            http.Response.Headers.RetryAfter = "5";
            if (outcome == IntakeOutcome.BrokerUnavailable)
                http.Response.Headers["X-LlmStream-Task-Id"] = message.TaskId; // its record says failed
            await OpenAiError.WriteAsync(http, StatusCodes.Status503ServiceUnavailable,
                outcome == IntakeOutcome.StoreUnavailable ? ChatIntake.StoreDown : ChatIntake.BrokerDown, null, "server_error");
            return;
        }
        http.Response.Headers["X-LlmStream-Task-Id"] = message.TaskId;

        EmbeddingTask? task;
        while ((task = await store.GetAsync(message.TaskId, http.RequestAborted)) is { State: not (EmbeddingState.Completed or EmbeddingState.Failed or EmbeddingState.Cancelled) })
            await watch.WaitAsync(TimeSpan.FromSeconds(15), http.RequestAborted); // the timeout only guards against a lost wake-up

        if (task is not { State: EmbeddingState.Completed })
        {
            // As for chats: the provider's own refusal passes through, and what no retry mends says so.
            var reason = task?.Error ?? (task?.State == EmbeddingState.Cancelled ? "the embedding task was cancelled (DELETE /embeddings/{task_id})" : "the embedding task expired before it finished");
            var failure = task?.Failure ?? (task?.State == EmbeddingState.Cancelled
                ? new FailureDetail(409, "invalid_request_error", "cancelled", null, reason)
                : new FailureDetail(502, "server_error", null, null, reason));
            if (failure.Retryable)
                http.Response.Headers.RetryAfter = "5";
            else
                http.Response.Headers["x-should-retry"] = "false";
            await OpenAiError.WriteAsync(http, failure.Status, failure.Message ?? reason, failure.Param, failure.Type, failure.Code);
            return;
        }

        http.Response.ContentType = "application/json";
        var response = http.Response.BodyWriter;
        await using var json = new Utf8JsonWriter(response);
        json.WriteStartObject();
        json.WriteString("object", "list");
        if (!await EmbeddingResultWriter.WriteDataAsync(json, response, store, task, request.Base64, openAiObjects: true, http.RequestAborted))
        {
            http.Abort();
            return;
        }
        json.WriteString("model", task.Model);
        EmbeddingResultWriter.WriteUsage(json, task);
        json.WriteEndObject();
        await json.FlushAsync(http.RequestAborted);
    }

    sealed record OpenAiEmbeddingRequest(IReadOnlyList<string> Texts, string? Model, int? Priority, int? Dimensions, bool Base64);

    /// <summary>OpenAI's body: input is a string or an array of strings (token arrays are refused: send text).</summary>
    static (OpenAiEmbeddingRequest? Request, (string Message, string Param)? Error) Parse(JsonElement body, string? priorityHeader, EmbeddingOptions limits, string defaultModel)
    {
        foreach (var property in body.EnumerateObject())
            if (!Known.Contains(property.Name))
                return (null, ($"Unrecognized request argument supplied: {property.Name}", property.Name));

        var errors = new Dictionary<string, string[]>();
        if (!body.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
            return (null, ("'input' is required: a string or an array of strings", "input"));
        List<string>? texts;
        if (input.ValueKind == JsonValueKind.String)
        {
            using var single = JsonDocument.Parse("[" + input.GetRawText() + "]");
            texts = EmbeddingInput.ReadTexts(single.RootElement, "input", limits, errors);
        }
        else if (input.ValueKind == JsonValueKind.Array && input.EnumerateArray().Any(i => i.ValueKind is JsonValueKind.Number or JsonValueKind.Array))
            return (null, ("token arrays are not supported: send the texts as strings", "input"));
        else
            texts = EmbeddingInput.ReadTexts(input, "input", limits, errors);
        var dimensions = EmbeddingInput.ReadDimensions(body, errors);
        if (errors.Count > 0)
        {
            var (param, messages) = errors.First();
            return (null, ($"'{param}' {messages[0]}", param.Split('[')[0]));
        }

        var model = defaultModel;
        if (body.TryGetProperty("model", out var m) && m.ValueKind != JsonValueKind.Null)
        {
            if (m.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(m.GetString()) || m.GetString()!.Length > 200)
                return (null, ("'model' must be a non-blank string of at most 200 characters", "model"));
            model = m.GetString()!;
        }
        var base64 = false;
        if (body.TryGetProperty("encoding_format", out var f) && f.ValueKind != JsonValueKind.Null)
        {
            if (f.ValueKind != JsonValueKind.String || f.GetString() is not ("float" or "base64"))
                return (null, ("'encoding_format' must be 'float' or 'base64'", "encoding_format"));
            base64 = f.GetString() == "base64";
        }
        if (body.TryGetProperty("user", out var user) && user.ValueKind is not (JsonValueKind.Null or JsonValueKind.String))
            return (null, ("'user' must be a string", "user"));
        int? priority = null;
        if (priorityHeader is not null)
        {
            if (!WorkQueues.TryParsePriority(priorityHeader, "X-Priority header", out var p, out var invalid))
                return (null, (invalid!, "X-Priority"));
            priority = p;
        }
        return (new OpenAiEmbeddingRequest(texts!, model, priority, dimensions, base64), null);
    }
}
