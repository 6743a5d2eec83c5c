using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmStream.Tests.EndToEnd;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Chaos;

/// <summary>
/// The gateway reaches RabbitMQ through a proxy that can hold RabbitMQ's replies: a publish arrives and is queued, but
/// the gateway never hears the confirm and its send times out. Such a request may be in the queue after all, so the
/// answer depends on who comes first: the gateway refusing it (503, and the message, once delivered, is dropped
/// without a model call) or a worker starting it (202, and it runs once). A 503'd request never reaches the model.
/// Workers connect to RabbitMQ directly.
/// </summary>
public sealed class Losing_publisher_confirms
{
    [Test]
    public async Task A_request_whose_confirm_is_lost_is_refused_unless_a_worker_took_it_and_never_both()
    {
        await using var cluster = await Cluster.StartAsync("lost-confirms", workers: 0, gateway: false);
        await using var proxy = new TcpProxy(new Uri(cluster.RabbitMqUrl));
        await cluster.StartGatewayAsync(new Dictionary<string, string>
        {
            ["RABBITMQ_URL"] = new UriBuilder(cluster.RabbitMqUrl) { Port = proxy.Port }.Uri.ToString(),
        });
        using var http = cluster.Client();
        cluster.Provider.Behavior.Reply = message => $"answer to {message}";

        // The gateway's connection and its queues are up before the replies stop.
        var (firstTask, _) = await cluster.PostChatAsync(http, new { message = "before the fault" });

        // No worker yet: the gateway's send times out, it refuses the request, and the message waits in the queue.
        proxy.HoldReplies();
        using (var refused = await http.PostAsJsonAsync("/chat", new { message = "refused while unconfirmed" }))
        {
            var body = await refused.Content.ReadAsStringAsync();
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), body);
            Assert.That(refused.Headers.RetryAfter, Is.Not.Null, body);
            using var problem = JsonDocument.Parse(body);
            Assert.That(problem.RootElement.GetProperty("detail").GetString(), Does.Contain("broker"), body);
            var refusedTask = problem.RootElement.GetProperty("task_id").GetString()!;
            proxy.ReleaseReplies();

            var status = await http.GetFromJsonAsync<JsonElement>($"/chat/{refusedTask}");
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("failed"), status.ToString());
            Assert.That(status.GetProperty("error").GetString(), Does.Contain("broker"), status.ToString());

            // The worker gets both messages; it runs the first and drops the refused one without a model call.
            var worker = await cluster.StartWorkerAsync();
            Assert.That((await cluster.WaitForEndAsync(http, firstTask, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));
            await worker.WaitForOutputAsync($"{refusedTask} has already ended", TimeSpan.FromSeconds(60));
            var events = await SseClient.ReadAllAsync(http, $"/stream/{status.GetProperty("session_id").GetString()}", TimeSpan.FromSeconds(10));
            Assert.That(events.Select(e => e.Event), Is.EqualTo(new[] { "queued", "error" }), "refused: no attempt, one terminal event");
        }

        // The gateway sends again once the replies flow (a 503 while its bus reconnects is fine; it must recover).
        var afterTask = await AcceptedWithin(http, "after the fault", TimeSpan.FromSeconds(30));
        Assert.That((await cluster.WaitForEndAsync(http, afterTask, TimeSpan.FromSeconds(60))).GetProperty("status").GetString(), Is.EqualTo("completed"));

        // With a worker waiting, it starts the task before the gateway's send times out: the request was queued after
        // all, so it is accepted and runs once.
        proxy.HoldReplies();
        var (takenTask, takenSession) = await cluster.PostChatAsync(http, new { message = "taken while unconfirmed" });
        proxy.ReleaseReplies();
        var taken = await cluster.WaitForEndAsync(http, takenTask, TimeSpan.FromSeconds(60));
        Assert.That(taken.GetProperty("status").GetString(), Is.EqualTo("completed"), taken.ToString());
        Assert.That(taken.GetProperty("result").GetString(), Is.EqualTo("answer to taken while unconfirmed"));
        var takenEvents = await SseClient.ReadAllAsync(http, $"/stream/{takenSession}", TimeSpan.FromSeconds(10));
        Assert.That(takenEvents.Count(e => e.Event is "done" or "error" or "cancelled"), Is.EqualTo(1), string.Join(" ", takenEvents.Select(e => e.Event)));
        Assert.That(cluster.Gateway!.Output, Does.Contain("did not confirm task"), "the send did time out: the fault was in place");

        var asked = cluster.Provider.Behavior.Requests.Select(r => r.Messages.Last().Content).ToList();
        Assert.That(asked, Is.EquivalentTo(new[] { "before the fault", "after the fault", "taken while unconfirmed" }), "a refused request never reaches the model");
    }

    static async Task<string> AcceptedWithin(HttpClient http, string message, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            using var response = await http.PostAsJsonAsync("/chat", new { message });
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.Accepted)
                return JsonDocument.Parse(body).RootElement.GetProperty("task_id").GetString()!;
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable || DateTime.UtcNow > deadline)
                Assert.Fail($"POST /chat answered {(int)response.StatusCode}: {body}");
            await Task.Delay(500);
        }
    }
}
