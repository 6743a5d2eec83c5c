using System.Text.Json;
using LlmStream.Sessions.Tasks;

namespace LlmStream.Gateway.Access;

/// <summary>
/// With API_KEYS set, a task, an embedding batch and a session belong to the key that created them: another key
/// is answered as if they did not exist (404), so ids cannot be probed across tenants. Without keys the API is open.
/// </summary>
public static class TenantAccess
{
    /// <summary>Whether the request's key may see a record created by <paramref name="owner"/>.</summary>
    public static bool CanSee(this HttpContext http, string? owner) => http.ApiKeyName() is not { } name || owner == name;

    /// <summary>
    /// A session belongs to the key of its first task (the first entry of its stream names it). A session that does not
    /// exist yet is anyone's to start.
    /// </summary>
    public static async Task<bool> CanUseSessionAsync(this HttpContext http, ITaskStore store, string sessionId, CancellationToken cancellationToken)
    {
        if (http.ApiKeyName() is null)
            return true;
        var first = await store.ReadAsync(sessionId, "0", 1, cancellationToken);
        if (first.Count == 0)
            return true;
        using var data = JsonDocument.Parse(first[0].Data);
        var taskId = data.RootElement.TryGetProperty("task_id", out var id) ? id.GetString() : null;
        var task = taskId is null ? null : await store.GetAsync(taskId, cancellationToken);
        return http.CanSee(task?.ApiKeyName);
    }
}
