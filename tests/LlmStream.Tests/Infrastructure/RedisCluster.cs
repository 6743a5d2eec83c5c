using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A real Redis Cluster on loopback: <c>masters</c> redis-server processes in cluster mode, each with
/// <c>replicasPerMaster</c> replicas, joined with <c>redis-cli --cluster create</c> (the default even slot ranges).
/// Owned by the test that started it.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    readonly List<Node> _nodes = [];
    readonly HashSet<Node> _killed = [];
    readonly string _directory;

    RedisCluster(string directory) => _directory = directory;

    public sealed record Node(int Port, ServiceProcess Process)
    {
        public string Address => $"127.0.0.1:{Port}";
    }

    public IReadOnlyList<Node> Nodes => _nodes;

    /// <summary>REDIS_URL naming every node as a seed.</summary>
    public string Url => "redis://" + string.Join(',', _nodes.Select(n => n.Address));

    public static async Task<RedisCluster> StartAsync(int masters = 3, int replicasPerMaster = 0, bool appendOnly = false)
    {
        var cluster = new RedisCluster(Directory.CreateTempSubdirectory("llmstream-redis-cluster-").FullName);
        try
        {
            for (var i = 0; i < masters * (1 + replicasPerMaster); i++)
            {
                var port = FreePort.Next();
                var folder = Directory.CreateDirectory(Path.Combine(cluster._directory, port.ToString(CultureInfo.InvariantCulture))).FullName;
                string[] arguments =
                [
                    "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                    // The bus port is chosen too: port + 10000 may not exist for a high ephemeral port.
                    "--cluster-enabled", "yes", "--cluster-port", FreePort.Next().ToString(CultureInfo.InvariantCulture),
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                    // As README advises: the other masters keep serving their slots while one fails over.
                    "--cluster-require-full-coverage", "no",
                    "--save", "", "--appendonly", appendOnly ? "yes" : "no", "--dir", folder, "--maxmemory-policy", "noeviction",
                ];
                var process = ServiceProcess.Start($"redis-cluster:{port}", "redis-server", arguments, new Dictionary<string, string>());
                cluster._nodes.Add(new Node(port, process));
            }
            foreach (var node in cluster._nodes)
                await node.Process.WaitForOutputAsync("Ready to accept connections", TimeSpan.FromSeconds(20));
            await RunCliAsync(["--cluster", "create", .. cluster._nodes.Select(n => n.Address), "--cluster-replicas",
                replicasPerMaster.ToString(CultureInfo.InvariantCulture), "--cluster-yes"]);
            await cluster.WaitUntilHealthyAsync(TimeSpan.FromSeconds(30));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Until every node still running reports cluster_state:ok and knows every slot, and every slot's master is
    /// a running node (after a kill, until a replica has taken over the dead master's slots).</summary>
    public async Task WaitUntilHealthyAsync(TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            var states = await Task.WhenAll(Running.Select(n => RunCliAsync(["-p", n.Port.ToString(CultureInfo.InvariantCulture), "cluster", "info"])));
            if (states.All(s => s.Contains("cluster_state:ok", StringComparison.Ordinal) && s.Contains("cluster_slots_ok:16384", StringComparison.Ordinal))
                && (await MastersAsync()).All(m => Running.Any(n => n.Port == m.Port)))
                return;
            if (DateTime.UtcNow > until)
                throw new TimeoutException("the Redis Cluster did not become healthy:\n" + string.Join("\n---\n", states));
            await Task.Delay(200);
        }
    }

    /// <summary>The masters serving slots now, as a running node sees them: port and slot ranges.</summary>
    async Task<List<(int Port, List<(int From, int To)> Slots)>> MastersAsync()
    {
        var masters = new List<(int, List<(int, int)>)>();
        var nodes = await RunCliAsync(["-p", Running.First().Port.ToString(CultureInfo.InvariantCulture), "cluster", "nodes"]);
        foreach (var line in nodes.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <state> <slot ranges...>
            var fields = line.Split(' ');
            if (!fields[2].Contains("master", StringComparison.Ordinal) || fields.Length <= 8)
                continue;
            var port = int.Parse(fields[1].Split('@')[0].Split(':')[1], CultureInfo.InvariantCulture);
            var ranges = fields.Skip(8).Where(r => !r.StartsWith('[')).Select(r => r.Split('-'))
                .Select(b => (int.Parse(b[0], CultureInfo.InvariantCulture), int.Parse(b[^1], CultureInfo.InvariantCulture))).ToList();
            masters.Add((port, ranges));
        }
        return masters;
    }

    public async Task<ConnectionMultiplexer> ConnectAsync() =>
        await ConnectionMultiplexer.ConnectAsync(string.Join(',', _nodes.Select(n => n.Address)) + ",allowAdmin=true");

    /// <summary>The node that serves <paramref name="slot"/> as master now.</summary>
    public async Task<Node> MasterOfAsync(int slot)
    {
        foreach (var (port, slots) in await MastersAsync())
        {
            if (slots.Any(r => slot >= r.From && slot <= r.To))
                return _nodes.Single(n => n.Port == port);
        }
        throw new InvalidOperationException($"no master serves slot {slot}");
    }

    /// <summary>kill -9 of one node, as a crashed host.</summary>
    public void Kill(Node node)
    {
        _killed.Add(node);
        node.Process.Kill();
    }

    IEnumerable<Node> Running => _nodes.Where(n => !_killed.Contains(n) && !n.Process.HasExited);

    static async Task<string> RunCliAsync(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"redis-cli {string.Join(' ', start.ArgumentList)} failed: {await error}{await output}");
        return await output;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            node.Process.Kill();
            await node.Process.DisposeAsync();
        }
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
