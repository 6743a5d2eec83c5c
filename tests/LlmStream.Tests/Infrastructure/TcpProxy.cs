using System.Net;
using System.Net.Sockets;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of a server (a gateway, RabbitMQ). <see cref="DropAll"/> resets every open
/// connection, as a network that fails under a browser would; <see cref="HoldReplies"/> keeps what the server sends
/// from its clients while their own bytes still reach it, as a network that loses the way back would (RabbitMQ gets
/// a publish, the publisher never hears the confirm).
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly Uri _target;
    readonly CancellationTokenSource _stop = new();
    readonly List<(Socket Client, Socket Upstream)> _open = [];
    readonly Task _accepting;

    readonly object _gateLock = new();
    TaskCompletionSource _replies = Flowing();

    public TcpProxy(Uri target)
    {
        _target = target;
        _listener.Start();
        Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accepting = AcceptAsync();
    }

    /// <summary>The proxy as an http URL (for a gateway behind it).</summary>
    public Uri Url { get; }

    public int Port => Url.Port;

    /// <summary>Connections reset by <see cref="DropAll"/> so far.</summary>
    public int Dropped { get; private set; }

    public void DropAll()
    {
        lock (_open)
        {
            foreach (var (client, upstream) in _open)
            {
                client.LingerState = new LingerOption(true, 0); // close with RST, not a polite FIN
                client.Close();
                upstream.Close();
                Dropped++;
            }
            _open.Clear();
        }
    }

    /// <summary>From now on, bytes from the server wait in the proxy (in order) until <see cref="ReleaseReplies"/>.</summary>
    public void HoldReplies()
    {
        lock (_gateLock)
            if (_replies.Task.IsCompleted)
                _replies = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void ReleaseReplies()
    {
        lock (_gateLock)
            _replies.TrySetResult();
    }

    static TaskCompletionSource Flowing()
    {
        var flowing = new TaskCompletionSource();
        flowing.SetResult();
        return flowing;
    }

    async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            _ = RelayAsync(client);
        }
    }

    async Task RelayAsync(Socket client)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await upstream.ConnectAsync(_target.Host, _target.Port, _stop.Token);
            lock (_open)
                _open.Add((client, upstream));
            await Task.WhenAny(PumpAsync(client, upstream, replies: false), PumpAsync(upstream, client, replies: true));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            lock (_open)
                _open.RemoveAll(pair => pair.Client == client);
            client.Dispose();
            upstream.Dispose();
        }
    }

    async Task PumpAsync(Socket from, Socket to, bool replies)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                if (replies)
                {
                    Task flowing;
                    lock (_gateLock)
                        flowing = _replies.Task;
                    await flowing.WaitAsync(_stop.Token);
                }
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        DropAll();
        await _accepting;
        _stop.Dispose();
    }
}
