using StackExchange.Redis;

namespace LlmStream.Tests.Infrastructure;

/// <summary>A real redis-server on a free loopback port, owned by the test that started it.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    ServiceProcess _process;
    readonly string _directory;
    readonly string[] _arguments;

    RedisServer(ServiceProcess process, int port, string directory, string[] arguments)
    {
        _process = process;
        Port = port;
        _directory = directory;
        _arguments = arguments;
    }

    public int Port { get; }
    public int Pid => _process.Pid;
    public string Url => $"redis://127.0.0.1:{Port}/0";

    public static async Task<RedisServer> StartAsync(bool appendOnly = false)
    {
        var port = FreePort.Next();
        var directory = Directory.CreateTempSubdirectory("llmstream-redis-").FullName;
        string[] arguments =
        [
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", appendOnly ? "yes" : "no", "--dir", directory,
            "--maxmemory-policy", "noeviction",
        ];
        var process = ServiceProcess.Start($"redis:{port}", "redis-server", arguments, new Dictionary<string, string>());
        var server = new RedisServer(process, port, directory, arguments);
        await process.WaitForOutputAsync("Ready to accept connections", TimeSpan.FromSeconds(20));
        return server;
    }

    public async Task<ConnectionMultiplexer> ConnectAsync() =>
        await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{Port},allowAdmin=true");

    /// <summary>Output of the current redis-server process.</summary>
    public string Output => _process.Output;

    /// <summary>
    /// Stops redis-server with SIGTERM (it writes and fsyncs its append-only file on the way out), then starts it
    /// again on the same port and folder: with appendOnly everything written before the stop is back.
    /// <paramref name="downtime"/> is how long it stays down in between.
    /// </summary>
    public async Task RestartAsync(TimeSpan downtime = default)
    {
        await _process.StopAsync(TimeSpan.FromSeconds(20));
        await _process.DisposeAsync();
        if (downtime > TimeSpan.Zero)
            await Task.Delay(downtime);
        _process = ServiceProcess.Start($"redis:{Port}", "redis-server", _arguments, new Dictionary<string, string>());
        await _process.WaitForOutputAsync("Ready to accept connections", TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        _process.Kill();
        await _process.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
