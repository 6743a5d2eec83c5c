using System.Text.Json;
using LlmStream.Contracts;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Intake;
using LlmStream.Providers;
using LlmStream.Sessions.Cancellation;
using LlmStream.Sessions.Embeddings;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LlmStream.Gateway.Embeddings;

/// <summary>POST /embeddings queues a batch for the embedding workers; GET /embeddings/{task_id} shows progress, then the vectors.</summary>
public static class EmbeddingsApi
{
    public static IEndpointRouteBuilder MapEmbeddingsApi(this IEndpointRouteBuilder app)
    {
        var embeddings = app.MapGroup("/embeddings").WithTags("Embeddings");
        embeddings.MapPost("/", PostEmbeddings)
            .Accepts<EmbeddingRequest>("application/json")
            .WithSummary("Queue a batch of texts to embed")
            .WithDescription("Answers 202 with the task id once the broker has the batch. Workers cut it into provider-sized chunks and run them in parallel under the cluster's rate limit.");
        embeddings.MapDelete("/{task_id}", CancelEmbeddings)
            .WithSummary("Cancel an embedding batch")
            .WithDescription("A queued batch never starts; a running one stops its provider requests and stores no more chunks. 409 when it has already ended.");
        embeddings.MapGet("/{task_id}", GetEmbeddings)
            .WithSummary("Status, progress and (once completed) the vectors of an embedding batch")
            .WithDescription("status is queued, running, completed, failed or cancelled; progress counts chunks. When completed, data holds one {index, embedding} per text in input order (?encoding_format=base64 for little-endian float32 in base64).");
        return app;
    }

    public sealed record EmbeddingsAccepted(string Status, string TaskId, string StatusUrl, string Queue, int Texts);

    static async Task<Results<Accepted<EmbeddingsAccepted>, ValidationProblem, ProblemHttpResult>> PostEmbeddings(
        HttpRequest http, EmbeddingIntake intake, Outages outages, PromptTokens tokens, IOptions<EmbeddingOptions> limits, IOptions<ModelOptions> models,
        ModelCatalog catalog, TimeProvider clock)
    {
        var (body, problem) = await JsonBody.ReadObjectAsync(http, limits.Value.MaxRequestBytes, http.HttpContext.RequestAborted);
        if (problem is not null)
            return problem;
        var (request, errors) = EmbeddingRequest.Parse(body, limits.Value);
        if (request is null)
            return TypedResults.ValidationProblem(errors, detail: "invalid field(s): " + string.Join(", ", errors.Keys));
        var model = request.Model ?? models.Value.EmbeddingModel;
        if (!catalog.Serves(model))
            return Problems.UnknownModel(model, catalog);
        var (counts, tooLong) = await EmbeddingInput.CountAsync(request.Texts, model, limits.Value.MaxTextTokens, tokens);
        if (tooLong is not null)
        {
            var field = $"texts[{tooLong.Value.Index}]";
            return TypedResults.ValidationProblem(
                new Dictionary<string, string[]> { [field] = [$"has {tooLong.Value.Tokens} tokens; {model} accepts at most {limits.Value.MaxTextTokens} per text (EMBEDDING_MAX_TEXT_TOKENS)"] },
                detail: "invalid field(s): " + field);
        }

        var message = new EmbedBatchRequested
        {
            TaskId = outages.NewId(),
            Texts = request.Texts,
            Model = model,
            Priority = request.Priority ?? 0,
            Dimensions = request.Dimensions,
            TextTokens = counts,
            ApiKeyName = http.HttpContext.ApiKeyName(),
            AcceptedAt = clock.GetUtcNow(),
        };
        var result = await intake.SubmitAsync(message);
        return result.Outcome switch
        {
            IntakeOutcome.Accepted => TypedResults.Accepted(StatusUrl(message.TaskId),
                new EmbeddingsAccepted("queued", message.TaskId, StatusUrl(message.TaskId), result.Queue, message.Texts.Count)),
            IntakeOutcome.StoreUnavailable => Problems.Unavailable(http.HttpContext.Response, ChatIntake.StoreDown),
            IntakeOutcome.BrokerDown => Problems.Unavailable(http.HttpContext.Response, ChatIntake.BrokerDown),
            _ => Problems.Unavailable(http.HttpContext.Response, ChatIntake.BrokerDown, message.TaskId),
        };
    }

    public static string StatusUrl(string taskId) => $"/embeddings/{taskId}";

    public sealed record EmbeddingsCancelled(string TaskId, string Status);

    static async Task<Results<Ok<EmbeddingsCancelled>, ProblemHttpResult>> CancelEmbeddings(
        string task_id, HttpContext http, IEmbeddingStore store, TaskCancellation cancellation, ILogger<EmbeddingRequest> logger, CancellationToken cancellationToken)
    {
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null || !http.CanSee(task.ApiKeyName))
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown embedding task",
                detail: $"no embedding task '{task_id}': it never existed or its result has expired");

        // Ending the task first fences the worker off (its next chunk is refused), then the signal stops its provider requests.
        if (await store.FinishAsync(task.TaskId, EmbeddingState.Cancelled, null, CancellationToken.None))
        {
            await cancellation.SignalAsync(task.TaskId);
            logger.LogInformation("Cancelled embedding task {TaskId} ({State})", task.TaskId, task.State.ToWire());
            return TypedResults.Ok(new EmbeddingsCancelled(task.TaskId, "cancelled"));
        }
        var now = await store.GetAsync(task_id, CancellationToken.None);
        return now?.State == EmbeddingState.Cancelled
            ? TypedResults.Ok(new EmbeddingsCancelled(task.TaskId, "cancelled"))
            : TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Embedding task already ended",
                detail: $"embedding task '{task_id}' has already {now?.State.ToWire() ?? "ended"}; there is nothing to cancel");
    }

    static async Task GetEmbeddings(string task_id, HttpContext http, IEmbeddingStore store, CancellationToken cancellationToken)
    {
        var format = http.Request.Query["encoding_format"].FirstOrDefault() ?? "float";
        if (format is not ("float" or "base64"))
        {
            await TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["encoding_format"] = ["must be float or base64"] },
                detail: "invalid field(s): encoding_format").ExecuteAsync(http);
            return;
        }
        var task = Ids.IsValidClientId(task_id) ? await store.GetAsync(task_id, cancellationToken) : null;
        if (task is null || !http.CanSee(task.ApiKeyName))
        {
            await TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown embedding task",
                detail: $"no embedding task '{task_id}': it never existed or its result has expired").ExecuteAsync(http);
            return;
        }

        http.Response.ContentType = "application/json; charset=utf-8";
        var body = http.Response.BodyWriter;
        await using var json = new Utf8JsonWriter(body);
        json.WriteStartObject();
        json.WriteString("task_id", task.TaskId);
        json.WriteString("status", task.State.ToWire());
        json.WriteString("model", task.Model);
        json.WriteNumber("texts", task.Texts);
        json.WriteNumber("priority", task.Priority);
        json.WriteNumber("attempt", task.Attempt);
        json.WriteStartObject("progress");
        json.WriteNumber("chunks_done", task.ChunksDone);
        json.WriteNumber("chunks_total", task.ChunksTotal);
        json.WriteEndObject();
        json.WriteString("created_at", task.CreatedAt);
        if (task.StartedAt is { } started) json.WriteString("started_at", started);
        if (task.FinishedAt is { } finished) json.WriteString("finished_at", finished);
        if (task.Error is not null) json.WriteString("error", task.Error);
        if (task.ApiKeyName is not null) json.WriteString("api_key", task.ApiKeyName);
        if (task.Dimensions is { } dimensions) json.WriteNumber("dimensions", dimensions);
        if (task.State == EmbeddingState.Completed)
        {
            EmbeddingResultWriter.WriteUsage(json, task);
            if (!await EmbeddingResultWriter.WriteDataAsync(json, body, store, task, format == "base64", openAiObjects: false, cancellationToken))
            {
                http.Abort(); // the result expired half-way: a cut connection, never a complete-looking partial answer
                return;
            }
        }
        json.WriteEndObject();
        await json.FlushAsync(cancellationToken);
    }
}
