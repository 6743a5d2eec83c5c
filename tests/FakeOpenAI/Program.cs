using System.Globalization;
using System.Runtime.InteropServices;

namespace LlmStream.FakeOpenAI;

/// <summary>
/// Standalone: dotnet LlmStream.FakeOpenAI.dll [--port N] [--token-delay-ms N] [--first-token-delay-ms N] [--reply-tokens N];
/// env FAKE_TOKEN_DELAY_MS. --reply-tokens answers every chat with that many one-word tokens instead of the echo.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var port = int.Parse(Option(args, "--port") ?? "0", CultureInfo.InvariantCulture);
        var delayMs = Option(args, "--token-delay-ms") ?? Environment.GetEnvironmentVariable("FAKE_TOKEN_DELAY_MS");
        var firstDelayMs = Option(args, "--first-token-delay-ms");
        var replyTokens = Option(args, "--reply-tokens");

        await using var server = await FakeOpenAiServer.StartAsync(port);
        if (!string.IsNullOrEmpty(delayMs))
        {
            server.Behavior.TokenDelay = TimeSpan.FromMilliseconds(double.Parse(delayMs, CultureInfo.InvariantCulture));
        }
        if (firstDelayMs is not null)
        {
            server.Behavior.FirstTokenDelay = TimeSpan.FromMilliseconds(double.Parse(firstDelayMs, CultureInfo.InvariantCulture));
        }
        if (replyTokens is not null)
        {
            var reply = string.Join(' ', Enumerable.Repeat("tok", int.Parse(replyTokens, CultureInfo.InvariantCulture)));
            server.Behavior.Reply = _ => reply;
        }

        var stop = new TaskCompletionSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
        Console.WriteLine($"FAKE_OPENAI_LISTENING {server.BaseUrl}");
        await stop.Task;
        return 0;
    }

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
