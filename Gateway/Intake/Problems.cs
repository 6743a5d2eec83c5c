using LlmStream.Providers;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LlmStream.Gateway.Intake;

/// <summary>The RFC 7807 problems the gateway's own APIs share (/v1 answers in OpenAI's error format instead).</summary>
public static class Problems
{
    /// <summary>503 with Retry-After: the broker or Redis is away, or this gateway stops. <paramref name="taskId"/> names a record that says failed.</summary>
    public static ProblemHttpResult Unavailable(HttpResponse response, string detail, string? taskId = null, int retryAfterSeconds = 5)
    {
        response.Headers.RetryAfter = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var extensions = new Dictionary<string, object?> { ["retry_after_seconds"] = retryAfterSeconds };
        if (taskId is not null)
            extensions["task_id"] = taskId;
        return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable", detail: detail, extensions: extensions);
    }

    /// <summary>A model the simulated model does not serve: 404 model_not_found, as OpenAI answers, with the models it does serve.</summary>
    public static ProblemHttpResult UnknownModel(string model, ModelCatalog catalog) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown model", detail: UnknownModelDetail(model, catalog),
            extensions: new Dictionary<string, object?> { ["field"] = "model", ["code"] = "model_not_found" });

    public static string UnknownModelDetail(string model, ModelCatalog catalog) =>
        $"the model '{model}' does not exist here: the simulated model serves {string.Join(", ", catalog.Names)} (GET /v1/models)";

    /// <summary>A request the intake turned away: the field named, with OpenAI's code when there is one.</summary>
    public static ProblemHttpResult Refused(IntakeRefusal refusal)
    {
        var extensions = new Dictionary<string, object?> { ["field"] = refusal.Field };
        if (refusal.Code is not null)
            extensions["code"] = refusal.Code;
        if (refusal.Status == StatusCodes.Status400BadRequest)
            extensions["errors"] = new Dictionary<string, string[]> { [refusal.Field] = [refusal.Message] };
        return TypedResults.Problem(statusCode: refusal.Status, title: refusal.Title, detail: refusal.Message, extensions: extensions);
    }
}
