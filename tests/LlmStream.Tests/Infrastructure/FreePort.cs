using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A port for a server a test starts. Taken below the kernel's ephemeral range: a port the kernel hands out (bind to 0)
/// is free only until the next outgoing connection of any process takes it as its local port, which happened in CI
/// between choosing a port and redis-server binding it ("Address already in use"). Ports are handed out in turn from a
/// random start, never twice while the range lasts, each checked free by a bind.
/// </summary>
public static class FreePort
{
    const int Lowest = 20000;
    static readonly int Highest = EphemeralLow() - 1;
    static readonly object Gate = new();
    static int _next = Lowest + Random.Shared.Next(Math.Max(1, Highest - Lowest));

    public static int Next()
    {
        if (Highest - Lowest < 1000)
            return FromKernel();
        lock (Gate)
        {
            for (var tries = 0; tries <= Highest - Lowest; tries++)
            {
                var port = _next;
                _next = _next >= Highest ? Lowest : _next + 1;
                if (IsFree(port))
                    return port;
            }
        }
        return FromKernel();
    }

    static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    static int FromKernel()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The first port of net.ipv4.ip_local_port_range (32768 where it cannot be read).</summary>
    static int EphemeralLow()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32768;
        }
    }
}
