using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.EndToEnd;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// Clients posting chats at ten a second, whatever the answers take (open loop), while a fault is injected; every
/// answer is kept with the time its request left.
/// </summary>
public sealed class SteadyChats(Cluster cluster, HttpClient http, string messagePrefix = "steady")
{
    public sealed record Posted(string Message, HttpStatusCode Status, string? TaskId, string? SessionId, string? RetryAfter, string? ContentType, string Body, TimeSpan At);

    readonly ConcurrentBag<Posted> _posts = [];
    readonly List<Task> _inFlight = [];
    int _sequence;

    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    public IReadOnlyCollection<Posted> Posts => _posts;

    /// <summary>Called with each accepted chat as its 202 arrives (to start following its stream at once).</summary>
    public Action<Posted>? OnAccepted { get; init; }

    async Task PostOne()
    {
        var message = $"{messagePrefix} {Interlocked.Increment(ref _sequence)}";
        var at = Clock.Elapsed;
        using var response = await http.PostAsJsonAsync("/chat", new { message });
        var body = await response.Content.ReadAsStringAsync();
        string? taskId = null, sessionId = null;
        if (response.StatusCode == HttpStatusCode.Accepted)
        {
            using var json = JsonDocument.Parse(body);
            taskId = json.RootElement.GetProperty("task_id").GetString();
            sessionId = json.RootElement.GetProperty("session_id").GetString();
        }
        var posted = new Posted(message, response.StatusCode, taskId, sessionId,
            response.Headers.TryGetValues("Retry-After", out var retry) ? retry.First() : null,
            response.Content.Headers.ContentType?.MediaType, body, at);
        if (taskId is not null)
            OnAccepted?.Invoke(posted);
        _posts.Add(posted);
    }

    /// <summary>Posts until <paramref name="until"/> holds; the test fails when it does not within <paramref name="limit"/>.</summary>
    public async Task PostUntilAsync(Func<bool> until, TimeSpan limit, string phase)
    {
        var deadline = Clock.Elapsed + limit;
        while (!until())
        {
            if (Clock.Elapsed > deadline)
                Assert.Fail($"{phase}: not reached within {limit.TotalSeconds:0} s; {_posts.Count} posts: " +
                            string.Join(", ", _posts.GroupBy(p => p.Status).Select(g => $"{(int)g.Key}×{g.Count()}")) + $"\n{cluster.Logs()}");
            _inFlight.Add(PostOne());
            await Task.Delay(100);
        }
    }

    public Task PostForAsync(TimeSpan duration)
    {
        var end = Clock.Elapsed + duration;
        return PostUntilAsync(() => Clock.Elapsed >= end, duration + TimeSpan.FromSeconds(10), $"posting for {duration.TotalSeconds:0} s");
    }

    /// <summary>Every request sent has its answer.</summary>
    public Task AnsweredAsync() => Task.WhenAll(_inFlight);
}
