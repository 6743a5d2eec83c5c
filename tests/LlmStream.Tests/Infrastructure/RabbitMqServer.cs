using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A real RabbitMQ node (Debian's rabbitmq-server) with its own node name, ports and folders, and the
/// management plugin for queue inspection. Each scenario takes its own virtual host.
/// </summary>
public sealed class RabbitMqServer : IAsyncDisposable
{
    ServiceProcess _process;
    readonly string _directory;
    readonly HttpClient _management;
    Dictionary<string, string> _environment = [];

    RabbitMqServer(ServiceProcess process, string directory, int amqpPort, int managementPort, string nodeName)
    {
        _process = process;
        _directory = directory;
        AmqpPort = amqpPort;
        ManagementPort = managementPort;
        NodeName = nodeName;
        _management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}/api/") };
        _management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("guest:guest"u8.ToArray()));
    }

    /// <summary>The policy `make cluster` puts the work queues under (deploy/rabbitmq/lazy-queues.policy.json).</summary>
    public static string LazyQueuesPolicy => Path.Combine(RepoPaths.Root, "deploy", "rabbitmq", "lazy-queues.policy.json");

    public const string LazyQueuesPolicyName = "llmstream-lazy";

    public int AmqpPort { get; }
    public int ManagementPort { get; }

    /// <summary>The Erlang node name (llmstream-test-PORT@localhost), as a cluster's queues name their leader.</summary>
    public string NodeName { get; }

    public bool IsUp => !_process.HasExited;

    public static async Task<RabbitMqServer> StartAsync()
    {
        var amqp = FreePort.Next();
        var management = FreePort.Next();
        var distribution = FreePort.Next();
        var directory = Directory.CreateTempSubdirectory("llmstream-rabbitmq-").FullName;
        Directory.CreateDirectory(Path.Combine(directory, "mnesia"));
        Directory.CreateDirectory(Path.Combine(directory, "log"));
        await File.WriteAllTextAsync(Path.Combine(directory, "enabled_plugins"), "[rabbitmq_management].\n");
        await File.WriteAllTextAsync(Path.Combine(directory, "rabbitmq.conf"),
            $"listeners.tcp.default = 127.0.0.1:{amqp}\nmanagement.tcp.port = {management}\nmanagement.tcp.ip = 127.0.0.1\ncollect_statistics_interval = 1000\n" +
            await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "deploy", "rabbitmq", "llmstream.conf")));
        // rabbitmq-server drops to the rabbitmq user, which must own every folder it is pointed at.
        using (var chown = Process.Start("chown", ["-R", "rabbitmq:rabbitmq", directory]))
            await chown.WaitForExitAsync();

        var node = $"llmstream-test-{amqp}@localhost";
        var environment = new Dictionary<string, string>
        {
            ["RABBITMQ_NODENAME"] = node,
            ["RABBITMQ_DIST_PORT"] = distribution.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(directory, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(directory, "log"),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(directory, "enabled_plugins"),
            ["RABBITMQ_CONFIG_FILE"] = Path.Combine(directory, "rabbitmq.conf"),
            ["RABBITMQ_PID_FILE"] = Path.Combine(directory, "rabbitmq.pid"),
        };
        var process = ServiceProcess.Start($"rabbitmq:{amqp}", "rabbitmq-server", [], environment);
        var server = new RabbitMqServer(process, directory, amqp, management, node) { _environment = environment };
        try
        {
            await server.WaitUntilUpAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    async Task WaitUntilUpAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            try
            {
                using var response = await _management.GetAsync("overview");
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException) { }
            if (_process.HasExited || DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"RabbitMQ did not start:\n{_process.Output}");
            await Task.Delay(250);
        }
    }

    /// <summary>Makes this node a member of <paramref name="seed"/>'s cluster (its own data is dropped, as rabbitmqctl does).</summary>
    public async Task JoinAsync(RabbitMqServer seed)
    {
        // rabbitmqctl can miss a node that has just booted on a loaded machine: each step is tried a few times.
        async Task Ctl(params string[] arguments)
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await CtlAsync(arguments);
                    return;
                }
                catch (InvalidOperationException) when (attempt < 4)
                {
                    await Task.Delay(TimeSpan.FromSeconds(3));
                }
            }
        }
        await Ctl("stop_app");
        await Ctl("join_cluster", seed.NodeName);
        await Ctl("start_app");
        await WaitUntilUpAsync();
    }

    async Task CtlAsync(params string[] arguments)
    {
        using var ctl = Process.Start(new ProcessStartInfo("rabbitmqctl", ["-q", "-n", NodeName, .. arguments])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = ctl.StandardOutput.ReadToEndAsync();
        var error = ctl.StandardError.ReadToEndAsync();
        await ctl.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        if (ctl.ExitCode != 0)
            throw new InvalidOperationException($"rabbitmqctl -n {NodeName} {string.Join(' ', arguments)} failed: {await error}{await output}");
    }

    /// <summary>kill -9 of the node's Erlang VM, as a crashed host: no clean shutdown, no goodbye to the cluster.</summary>
    public async Task KillAsync()
    {
        if (await BeamPidAsync() is { } beam)
        {
            try { Process.GetProcessById(beam).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        }
        _process.Kill();
    }

    /// <summary>
    /// Stops the node (SIGTERM to the Erlang VM: a clean shutdown, durable queues and persistent messages stay on disk)
    /// and waits until it is gone. Its folders, node name and ports are kept for <see cref="StartAgainAsync"/>.
    /// </summary>
    public async Task StopAsync()
    {
        var beam = await BeamPidAsync();
        if (beam is { } pid)
        {
            using (var term = Process.Start("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)]))
                await term.WaitForExitAsync();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (IsRunning(pid) && DateTime.UtcNow < deadline)
                await Task.Delay(100);
            if (IsRunning(pid))
                Process.GetProcessById(pid).Kill();
        }
        await _process.StopAsync(TimeSpan.FromSeconds(20));
    }

    /// <summary>Starts the node stopped by <see cref="StopAsync"/> again, with the same name, ports and data.</summary>
    public async Task StartAgainAsync()
    {
        await _process.DisposeAsync();
        _process = ServiceProcess.Start($"rabbitmq:{AmqpPort}", "rabbitmq-server", [], _environment);
        await WaitUntilUpAsync();
    }

    /// <summary>
    /// The Erlang VM started under this server's process: found among its descendants, never taken from the pid file alone
    /// (process ids wrap quickly on a busy machine, and a stale number may name another test's process).
    /// </summary>
    Task<int?> BeamPidAsync() => Task.FromResult(BeamUnder(_process.Pid));

    static int? BeamUnder(int root)
    {
        var parents = new Dictionary<int, int>();
        var names = new Dictionary<int, string>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
                continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var close = stat.LastIndexOf(')');
                names[pid] = stat[(stat.IndexOf('(') + 1)..close];
                parents[pid] = int.Parse(stat[(close + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
            }
            catch (IOException) { } // gone meanwhile
        }
        foreach (var (pid, name) in names)
        {
            if (!name.StartsWith("beam", StringComparison.Ordinal))
                continue;
            for (var ancestor = pid; parents.TryGetValue(ancestor, out var parent) && ancestor > 1; ancestor = parent)
            {
                if (parent == root)
                    return pid;
            }
        }
        return null;
    }

    static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// A fresh virtual host for one scenario, with the work queues' lazy-queue policy as `make cluster` applies it;
    /// returns its amqp:// URL.
    /// </summary>
    public async Task<string> CreateVirtualHostAsync(string name)
    {
        (await _management.PutAsync($"vhosts/{name}", null)).EnsureSuccessStatusCode();
        (await _management.PutAsJsonAsync($"permissions/{name}/guest", new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        using var policy = new StringContent(await File.ReadAllTextAsync(LazyQueuesPolicy), Encoding.UTF8, "application/json");
        (await _management.PutAsync($"policies/{name}/{LazyQueuesPolicyName}", policy)).EnsureSuccessStatusCode();
        return $"amqp://guest:guest@127.0.0.1:{AmqpPort}/{name}";
    }

    /// <summary>A client connection to RABBITMQ_URL: one node, or the first node of a cluster that answers.</summary>
    public static async Task<RabbitMQ.Client.IConnection> ConnectAsync(string url)
    {
        if (!LlmStream.ServiceDefaults.Settings.RabbitMqUrl.TryParse(url, out var address, out var error))
            throw new ArgumentException(error, nameof(url));
        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = address.First };
        return await factory.CreateConnectionAsync([.. address.Nodes.Select(node => new RabbitMQ.Client.AmqpTcpEndpoint(node))], "llmstream-tests");
    }

    /// <summary>Messages ready in each queue, read exactly with a passive declare (the management API lags).</summary>
    public static async Task<IReadOnlyDictionary<string, uint>> QueueDepthsAsync(string vhostUrl, params string[] queues)
    {
        await using var connection = await ConnectAsync(vhostUrl);
        var depths = new Dictionary<string, uint>();
        foreach (var queue in queues)
        {
            await using var channel = await connection.CreateChannelAsync();
            try
            {
                depths[queue] = (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                depths[queue] = 0; // not declared: nothing was ever sent to it
            }
        }
        return depths;
    }

    /// <summary>Drops every message ready in the queue, as a broker that lost them would.</summary>
    public static async Task PurgeAsync(string vhostUrl, string queue)
    {
        await using var connection = await ConnectAsync(vhostUrl);
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueuePurgeAsync(queue);
    }

    /// <summary>The queue's arguments as declared, e.g. x-max-priority.</summary>
    public async Task<JsonElement> QueueAsync(string vhost, string queue)
    {
        using var response = await _management.GetAsync($"queues/{vhost}/{Uri.EscapeDataString(queue)}");
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited && await BeamPidAsync() is { } beam)
        {
            try { Process.GetProcessById(beam).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        }
        _process.Kill();
        await _process.DisposeAsync();
        _management.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
