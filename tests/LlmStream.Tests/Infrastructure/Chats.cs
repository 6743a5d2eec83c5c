using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace LlmStream.Tests.Infrastructure;

/// <summary>POST /chat and waiting for the task's end, as a client of any gateway (a test cluster's or a container's) does.</summary>
public static class Chats
{
    /// <summary>Posts a chat; its task and session ids. Anything but 202 is the test's failure.</summary>
    public static async Task<(string TaskId, string SessionId)> PostAsync(HttpClient http, object body)
    {
        var response = await http.PostAsJsonAsync("/chat", body);
        var text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.Accepted)
            throw new InvalidOperationException($"POST /chat answered {(int)response.StatusCode}: {text}");
        using var accepted = JsonDocument.Parse(text);
        return (accepted.RootElement.GetProperty("task_id").GetString()!, accepted.RootElement.GetProperty("session_id").GetString()!);
    }

    /// <summary>
    /// Polls GET /chat/{id} until the task reaches a terminal status (bounded). A 503 (Redis away for a moment, as in a
    /// failover) is asked again, as its Retry-After tells a client to; any other failure is the test's.
    /// </summary>
    public static async Task<JsonElement> WaitForEndAsync(HttpClient http, string taskId, TimeSpan timeout, Func<string>? context = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            using var response = await http.GetAsync($"/chat/{taskId}");
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
                continue;
            }
            response.EnsureSuccessStatusCode();
            var status = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (status.GetProperty("status").GetString() is "completed" or "failed" or "cancelled")
                return status;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"task {taskId} still {status.GetProperty("status").GetString()} after {timeout.TotalSeconds:0} s\n{context?.Invoke()}");
            await Task.Delay(50);
        }
    }
}
