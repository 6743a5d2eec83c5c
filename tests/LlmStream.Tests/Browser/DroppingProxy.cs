using System.Net;
using System.Net.Sockets;

namespace LlmStream.Tests.Browser;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of a gateway. <see cref="DropAll"/> resets every open connection, as a
/// network that fails under a browser would: the page's open stream breaks mid-answer.
/// </summary>
public sealed class DroppingProxy : IAsyncDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly Uri _target;
    readonly CancellationTokenSource _stop = new();
    readonly List<(Socket Client, Socket Upstream)> _open = [];
    readonly Task _accepting;

    public DroppingProxy(Uri target)
    {
        _target = target;
        _listener.Start();
        Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accepting = AcceptAsync();
    }

    public Uri Url { get; }

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
            await Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client));
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

    async Task PumpAsync(Socket from, Socket to)
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
