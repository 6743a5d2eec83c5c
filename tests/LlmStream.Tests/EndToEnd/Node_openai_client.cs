using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LlmStream.Providers;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>The official `openai` npm package (tests/node, installed from its lock file by make test) against a gateway process.</summary>
public sealed class Node_openai_client
{
    [Test]
    public async Task Gets_whole_and_streamed_completions_with_usage_and_openai_errors()
    {
        var script = Path.Combine(RepoPaths.Root, "tests", "node", "openai-client.mjs");
        Assert.That(Directory.Exists(Path.Combine(RepoPaths.Root, "tests", "node", "node_modules", "openai")), Is.True,
            "run make test-deps (npm ci in tests/node) first");
        var port = FreePort.Next();
        await using var gateway = ServiceProcess.StartDotnet("gateway", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["HOST"] = "127.0.0.1",
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["SIMULATED_TOKENS_PER_SECOND"] = "0",
        });
        await gateway.WaitForHttpAsync(new Uri($"http://127.0.0.1:{port}/health"), TimeSpan.FromSeconds(60));

        var info = new ProcessStartInfo("node", [script, $"http://127.0.0.1:{port}/v1"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var node = Process.Start(info)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var output = await node.StandardOutput.ReadToEndAsync(cts.Token);
        var errors = await node.StandardError.ReadToEndAsync(cts.Token);
        await node.WaitForExitAsync(cts.Token);
        Assert.That(node.ExitCode, Is.Zero, errors);

        var result = JsonDocument.Parse(output).RootElement;
        var whole = result.GetProperty("whole");
        Assert.That(whole.GetProperty("content").GetString(), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens("hello from node"))));
        Assert.That(whole.GetProperty("finish").GetString(), Is.EqualTo("stop"));
        Assert.That(whole.GetProperty("usage").GetProperty("total_tokens").GetInt32(), Is.GreaterThan(0));
        var streamed = result.GetProperty("streamed");
        Assert.That(streamed.GetProperty("content").GetString(), Is.EqualTo(string.Concat(SimulatedChatClient.Tokens("stream from node"))));
        Assert.That(streamed.GetProperty("finish").GetString(), Is.EqualTo("stop"));
        Assert.That(streamed.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(SimulatedChatClient.Tokens("stream from node").Count));
        var error = result.GetProperty("error");
        Assert.That(error.GetProperty("status").GetInt32(), Is.EqualTo(400));
        Assert.That(error.GetProperty("param").GetString(), Is.EqualTo("messages"));
    }

    /// <summary>
    /// The SDK retries 408, 409, 429 and 5xx by itself (twice by default) unless told not to: a permanent failure must
    /// reach it as such, or one request becomes three tasks and three provider calls.
    /// </summary>
    [Test]
    public async Task Calls_the_provider_once_for_a_failure_no_retry_can_mend()
    {
        await using var cluster = await Cluster.StartAsync("node-errors", broker: "inmemory", settings: new Dictionary<string, string> { ["RETRY_LIMIT"] = "0" });
        var behavior = cluster.Provider.Behavior;
        behavior.KnownModels = ["gpt-4o-mini"];

        var (unknown, calls) = await RunAsync(cluster, "gpt-5-no-such-model");
        Assert.That(calls, Is.EqualTo(2), "one provider call for each of the two requests");
        foreach (var name in new[] { "whole", "streamed" })
        {
            var seen = unknown.GetProperty(name);
            Assert.That((seen.GetProperty("status").GetInt32(), seen.GetProperty("code").GetString()), Is.EqualTo((404, "model_not_found")), seen.ToString());
            Assert.That(seen.GetProperty("shouldRetry").GetString(), Is.EqualTo("false"));
        }

        behavior.RequiredApiKey = "a-key-the-gateway-does-not-have";
        var (refused, refusedCalls) = await RunAsync(cluster, "gpt-4o-mini");
        Assert.That(refusedCalls, Is.EqualTo(2), "the provider refusing the gateway's key is not retried either");
        Assert.That((refused.GetProperty("whole").GetProperty("status").GetInt32(), refused.GetProperty("whole").GetProperty("shouldRetry").GetString()),
            Is.EqualTo((502, "false")), refused.ToString());
        Assert.That(refused.GetProperty("streamed").GetProperty("code").GetString(), Is.EqualTo("provider_credentials_refused"));

        behavior.RequiredApiKey = null;
        behavior.FailNext(500, count: 4);
        var (transient, transientCalls) = await RunAsync(cluster, "gpt-4o-mini", maxRetries: 1);
        Assert.That(transientCalls, Is.EqualTo(4), "a transient failure keeps its retryable status: the SDK tried each request twice");
        Assert.That(transient.GetProperty("whole").GetProperty("status").GetInt32(), Is.EqualTo(502), transient.ToString());
        Assert.That(transient.GetProperty("whole").GetProperty("shouldRetry").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    static async Task<(JsonElement Result, int ProviderCalls)> RunAsync(Cluster cluster, string model, int maxRetries = 2)
    {
        var before = cluster.Provider.Behavior.ChatRequests;
        var script = Path.Combine(RepoPaths.Root, "tests", "node", "openai-errors.mjs");
        var info = new ProcessStartInfo("node", [script, new Uri(cluster.GatewayUrl, "/v1").ToString(), model, maxRetries.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var node = Process.Start(info)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var output = await node.StandardOutput.ReadToEndAsync(cts.Token);
        var errors = await node.StandardError.ReadToEndAsync(cts.Token);
        await node.WaitForExitAsync(cts.Token);
        Assert.That(node.ExitCode, Is.Zero, errors);
        return (JsonDocument.Parse(output).RootElement.Clone(), cluster.Provider.Behavior.ChatRequests - before);
    }
}
