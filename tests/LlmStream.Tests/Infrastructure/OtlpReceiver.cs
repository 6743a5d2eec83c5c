using System.Collections.Concurrent;
using System.Net;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// Stands in for an OpenTelemetry collector (OTLP over HTTP, protobuf) on 127.0.0.1: answers every export with 200
/// and keeps each request's path and body, so a test can look for a trace id or a name in what was exported.
/// </summary>
public sealed class OtlpReceiver : IDisposable
{
    readonly HttpListener _listener = new();
    readonly ConcurrentQueue<(string Path, byte[] Body)> _exports = new();
    readonly Task _serving;

    OtlpReceiver(int port)
    {
        Endpoint = new Uri($"http://127.0.0.1:{port}");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = Task.Run(Serve);
    }

    /// <summary>The value for OTEL_EXPORTER_OTLP_ENDPOINT (with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).</summary>
    public Uri Endpoint { get; }

    public static OtlpReceiver Start() => new(FreePort.Next());

    /// <summary>Exports received on <paramref name="path"/> (/v1/traces or /v1/metrics) so far.</summary>
    public IReadOnlyList<byte[]> Received(string path) => [.. _exports.Where(e => e.Path == path).Select(e => e.Body)];

    /// <summary>Waits (bounded) until an export on <paramref name="path"/> contains every one of <paramref name="needles"/>.</summary>
    public async Task<bool> WaitForAsync(string path, TimeSpan timeout, params byte[][] needles)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Received(path).Any(body => needles.All(n => body.AsSpan().IndexOf(n) >= 0)))
                return true;
            await Task.Delay(100);
        }
        return false;
    }

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            _exports.Enqueue((context.Request.Url!.AbsolutePath, body.ToArray()));
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _serving.Wait(TimeSpan.FromSeconds(5));
    }
}
