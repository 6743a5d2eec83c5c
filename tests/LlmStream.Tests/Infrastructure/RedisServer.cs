using StackExchange.Redis;

namespace LlmStream.Tests.Infrastructure;

/// <summary>A real redis-server on a free loopback port, owned by the test that started it.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    readonly ServiceProcess _process;
    readonly string _directory;

    RedisServer(ServiceProcess process, int port, string directory)
    {
        _process = process;
        Port = port;
        _directory = directory;
    }

    public int Port { get; }
    public int Pid => _process.Pid;
    public string Url => $"redis://127.0.0.1:{Port}/0";

    public static async Task<RedisServer> StartAsync(bool appendOnly = false)
    {
        var port = FreePort.Next();
        var directory = Directory.CreateTempSubdirectory("llmstream-redis-").FullName;
        var process = ServiceProcess.Start($"redis:{port}", "redis-server",
        [
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", appendOnly ? "yes" : "no", "--dir", directory,
            "--maxmemory-policy", "noeviction",
        ], new Dictionary<string, string>());
        var server = new RedisServer(process, port, directory);
        await process.WaitForOutputAsync("Ready to accept connections", TimeSpan.FromSeconds(20));
        return server;
    }

    public async Task<ConnectionMultiplexer> ConnectAsync() =>
        await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{Port},allowAdmin=true");

    public async ValueTask DisposeAsync()
    {
        _process.Kill();
        await _process.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
