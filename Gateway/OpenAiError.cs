using LlmStream.Sessions.Streams;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway;

/// <summary>OpenAI's error object: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public static class OpenAiError
{
    public static Task WriteAsync(HttpContext http, int status, string message, string? param, string? type = null, string? code = null)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new
        {
            error = new
            {
                message,
                type = type ?? (status >= 500 ? "server_error" : "invalid_request_error"),
                param,
                code,
            },
        });
    }

    /// <summary>OpenAI's answer for a model it does not serve; its SDKs do not retry a 404.</summary>
    public static Task ModelNotFoundAsync(HttpContext http, string model) =>
        WriteAsync(http, StatusCodes.Status404NotFound, $"The model '{model}' does not exist or you do not have access to it.", "model", code: "model_not_found");

    /// <summary>A stopping gateway's answer: 503 with Retry-After, which OpenAI's SDKs retry (with the same Idempotency-Key).</summary>
    public static Task WriteStoppingAsync(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "1";
        http.Response.Headers.Connection = "close";
        return WriteAsync(http, StatusCodes.Status503ServiceUnavailable,
            "this gateway is stopping: repeat the request (with the same Idempotency-Key to join the task already running)", null, "server_error", "service_unavailable");
    }

    /// <summary>How a task that ended without an answer reads to an OpenAI client.</summary>
    public static FailureDetail FailureOf(TaskRecord? task) => task switch
    {
        { State: TaskState.Cancelled } => new FailureDetail(409, "invalid_request_error", "cancelled", null, "the request was cancelled"),
        { Failure: { } failure } => failure,
        { Error: { } error } => FailureDetail.Internal with { Message = error },
        _ => FailureDetail.Internal with { Message = "the task ended without an answer" },
    };

    /// <summary>
    /// A task that ended without an answer, as the response: its status and error object, and what OpenAI's SDKs read to
    /// decide on a retry: <c>x-should-retry: false</c> when no retry can mend it, <c>Retry-After</c> when one may.
    /// </summary>
    public static Task WriteEndedAsync(HttpContext http, TaskRecord? task)
    {
        var failure = FailureOf(task);
        if (failure.Retryable)
            http.Response.Headers.RetryAfter = "5";
        else
            http.Response.Headers["x-should-retry"] = "false";
        return WriteAsync(http, failure.Status, failure.Message ?? task?.Error ?? "the task ended without an answer", failure.Param, failure.Type, failure.Code);
    }

    public static void WriteObject(System.Text.Json.Utf8JsonWriter w, string message, string type, string? param, string? code)
    {
        w.WriteStartObject();
        w.WriteString("message", message);
        w.WriteString("type", type);
        if (param is null) w.WriteNull("param"); else w.WriteString("param", param);
        if (code is null) w.WriteNull("code"); else w.WriteString("code", code);
        w.WriteEndObject();
    }
}
