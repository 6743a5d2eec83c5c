using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace LlmStream.FakeOpenAI;

/// <summary>
/// An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks. Serves
/// /v1/chat/completions, /v1/embeddings and /v1/models, and the Azure OpenAI shapes
/// /openai/deployments/{deployment}/chat/completions and .../embeddings.
/// </summary>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private FakeOpenAiServer(WebApplication app, FakeBehavior behavior, Uri root)
    {
        _app = app;
        Behavior = behavior;
        Root = root;
        BaseUrl = new Uri(root, "v1");
    }

    /// <summary>What the server does and what it has seen; change it at any time.</summary>
    public FakeBehavior Behavior { get; }

    /// <summary>http://127.0.0.1:PORT — the endpoint for Azure OpenAI clients.</summary>
    public Uri Root { get; }

    /// <summary>http://127.0.0.1:PORT/v1 — the endpoint for OpenAI clients.</summary>
    public Uri BaseUrl { get; }

    public int Port => Root.Port;

    /// <summary>The fake model's tokens; same as <see cref="FakeBehavior.Tokenize"/>.</summary>
    public static IReadOnlyList<string> Tokenize(string text) => FakeBehavior.Tokenize(text);

    /// <summary>Starts a server on 127.0.0.1:<paramref name="port"/>; 0 picks a free port.</summary>
    public static async Task<FakeOpenAiServer> StartAsync(int port = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);

        // The empty builder reads no appsettings or environment, so a test host's
        // ASPNETCORE_URLS and friends cannot move or reconfigure the fake.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(FakeOpenAiServer).Assembly.GetName().Name,
        });
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            options.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
            options.Listen(IPAddress.Loopback, port);
        });
        builder.Services.AddRoutingCore();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        // No ConsoleLifetime: a server inside a test process must not take over Ctrl+C or SIGTERM.
        builder.Services.AddSingleton<IHostLifetime, PassiveLifetime>();
        builder.Logging.AddConsole();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);

        var app = builder.Build();
        var behavior = new FakeBehavior();
        var stopping = app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        new FakeOpenAiEndpoints(behavior, stopping).Map(app);

        await app.StartAsync(cancellationToken).ConfigureAwait(false);

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("The fake OpenAI server did not report its address.");
        var bound = new Uri(address);
        var root = new Uri($"http://127.0.0.1:{bound.Port}/");
        return new FakeOpenAiServer(app, behavior, root);
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the timeout passes; returns whether it held.</summary>
    public async Task<bool> WaitUntilAsync(Func<FakeBehavior, bool> condition, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(Behavior))
        {
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(10).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>Completes when the host stops (for the standalone process).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) =>
        _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // Stopping cancels hanging and delayed requests (they watch ApplicationStopping).
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

internal sealed class PassiveLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
