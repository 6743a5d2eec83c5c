using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace LlmStream.Gateway;

/// <summary>HEAD answers like GET without the body wherever GET is served (monitors and link checkers send it).</summary>
public static class HeadRequests
{
    /// <summary>Before routing: a HEAD is routed as the GET it stands for, and what it writes is dropped.</summary>
    public static WebApplication UseHeadAsGet(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsHead(context.Request.Method))
            {
                await next(context);
                return;
            }
            context.Request.Method = HttpMethods.Get;
            var body = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
            context.Features.Set<IHttpResponseBodyFeature>(new HeadersOnly(body));
            // Once the headers are out there is nothing left to send: a stream (SSE) ends there instead of running on.
            var headersSent = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            context.Response.RegisterForDispose(headersSent);
            context.RequestAborted = headersSent.Token;
            context.Response.OnStarting(() =>
            {
                headersSent.CancelAfter(TimeSpan.Zero);
                return Task.CompletedTask;
            });
            try
            {
                await next(context);
            }
            catch (OperationCanceledException) when (headersSent.IsCancellationRequested && context.Response.HasStarted)
            {
            }
        });
        app.UseRouting();
        return app;
    }

    /// <summary>The response's headers go out as for GET, when it first writes; its body goes nowhere.</summary>
    sealed class HeadersOnly : IHttpResponseBodyFeature
    {
        readonly IHttpResponseBodyFeature _inner;

        public HeadersOnly(IHttpResponseBodyFeature inner)
        {
            _inner = inner;
            Stream = new Discarding(inner);
            Writer = PipeWriter.Create(Stream);
        }

        public Stream Stream { get; }
        public PipeWriter Writer { get; }
        public void DisableBuffering() => _inner.DisableBuffering();
        public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);
        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);
        public Task CompleteAsync() => _inner.CompleteAsync();
    }

    /// <summary>Writes start the response (so its headers go out) and are dropped.</summary>
    sealed class Discarding(IHttpResponseBodyFeature inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => 0;
        public override long Position { get => 0; set { } }
        public override void Flush() { }
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.StartAsync().GetAwaiter().GetResult();
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => new(inner.StartAsync(cancellationToken));
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);
    }
}
