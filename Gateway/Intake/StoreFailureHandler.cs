using LlmStream.ServiceDefaults.Redis;
using Microsoft.AspNetCore.Diagnostics;

namespace LlmStream.Gateway.Intake;

/// <summary>
/// A read that Redis did not answer (a master failing over, Redis down) is a 503 with Retry-After that says so, not a
/// 500: the request can be repeated as it is. The intake handles its own writes (Outages); this covers the rest.
/// </summary>
public sealed class StoreFailureHandler(ILogger<StoreFailureHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken cancellationToken)
    {
        if (!exception.IsRedisFailure() || http.Response.HasStarted)
            return false;
        logger.LogWarning("{Method} {Path}: the task store (Redis) did not answer ({Reason}); answered 503",
            http.Request.Method, http.Request.Path, exception.GetBaseException().Message.Split('\n')[0]);
        await Problems.Unavailable(http.Response, "the task store (Redis) did not answer; try again shortly").ExecuteAsync(http);
        return true;
    }
}
