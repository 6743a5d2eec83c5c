using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LlmStream.ServiceDefaults.Models;
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
}
