using System.Globalization;
using System.Text.Json;
using LlmStream.FakeOpenAI;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// A real deployment in miniature: RabbitMQ, Redis, the fake OpenAI-compatible provider, and the gateway
/// and chat workers as separate processes, configured only through their environment like production.
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    readonly List<ServiceProcess> _workers = [];

    Cluster(string broker, RabbitMqServer? rabbitMq, string vhost, string rabbitMqUrl, RedisServer? redis, RedisCluster? redisCluster,
        FakeOpenAiServer provider, IReadOnlyDictionary<string, string> common)
    {
        Broker = broker;
        _common = common;
        RabbitMq = rabbitMq!;
        VirtualHost = vhost;
        RabbitMqUrl = rabbitMqUrl;
        _redis = redis;
        RedisCluster = redisCluster;
        Provider = provider;
    }

    readonly RedisServer? _redis;

    readonly IReadOnlyDictionary<string, string> _common;

    /// <summary>rabbitmq, redis or inmemory (the gateway then runs the chat worker itself).</summary>
    public string Broker { get; }
    public RabbitMqServer RabbitMq { get; }
    public string VirtualHost { get; }
    public string RabbitMqUrl { get; }
    /// <summary>The one redis-server, when the cluster has no Redis Cluster.</summary>
    public RedisServer Redis => _redis ?? throw new InvalidOperationException("this cluster runs a Redis Cluster: use RedisCluster");

    /// <summary>The Redis Cluster, when asked for one.</summary>
    public RedisCluster? RedisCluster { get; }

    public string RedisUrl => RedisCluster?.Url ?? Redis.Url;

    public async Task<StackExchange.Redis.ConnectionMultiplexer> ConnectRedisAsync() =>
        RedisCluster is { } nodes ? await nodes.ConnectAsync() : await Redis.ConnectAsync();
    public FakeOpenAiServer Provider { get; }
    readonly List<(ServiceProcess Process, Uri Url)> _gateways = [];

    public ServiceProcess? Gateway => _gateways.Count > 0 ? _gateways[0].Process : null;
    public IReadOnlyList<ServiceProcess> Gateways => _gateways.Select(g => g.Process).ToList();
    public IReadOnlyList<ServiceProcess> Workers => _workers;
    public Uri GatewayUrl => _gateways[0].Url;

    /// <param name="settings">Settings for every process of the cluster.</param>
    /// <param name="rabbitMq">A RabbitMQ node of the caller's (which it stops and restarts); by default the shared one.</param>
    /// <param name="redisAppendOnly">Redis with its append-only file, for scenarios that restart it.</param>
    /// <param name="redisMasters">A Redis Cluster of that many masters (each with <paramref name="redisReplicas"/> replicas) instead of one redis-server.</param>
    /// <param name="rabbitMqCluster">A RabbitMQ cluster to run on (RABBITMQ_URL names all its nodes) instead of one node.</param>
    public static async Task<Cluster> StartAsync(string name, int workers = 1, bool gateway = true,
        IReadOnlyDictionary<string, string>? gatewaySettings = null, string broker = "rabbitmq", IReadOnlyDictionary<string, string>? settings = null,
        RabbitMqServer? rabbitMq = null, bool redisAppendOnly = false, int redisMasters = 0, int redisReplicas = 0, RabbitMqCluster? rabbitMqCluster = null)
    {
        var vhost = $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)];
        var url = "";
        if (broker == "rabbitmq" && rabbitMqCluster is not null)
        {
            url = await rabbitMqCluster.CreateVirtualHostAsync(vhost);
        }
        else if (broker == "rabbitmq")
        {
            rabbitMq ??= await SharedServices.RabbitMqAsync();
            url = await rabbitMq.CreateVirtualHostAsync(vhost);
        }
        var redisCluster = redisMasters > 0 ? await RedisCluster.StartAsync(redisMasters, redisReplicas, redisAppendOnly) : null;
        var redis = redisCluster is null ? await RedisServer.StartAsync(redisAppendOnly) : null;
        var provider = await FakeOpenAiServer.StartAsync();
        var cluster = new Cluster(broker, rabbitMq, vhost, url, redis, redisCluster, provider, settings ?? new Dictionary<string, string>());
        if (broker == "inmemory")
            workers = 0; // the gateway hosts the chat worker
        try
        {
            if (gateway)
                await cluster.StartGatewayAsync(gatewaySettings);
            for (var i = 0; i < workers; i++)
                await cluster.StartWorkerAsync();
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    public Dictionary<string, string> Settings()
    {
        var settings = new Dictionary<string, string>
        {
            ["BROKER"] = Broker,
            ["OPENAI_BASE_URL"] = Provider.BaseUrl.ToString(),
            ["OPENAI_API_KEY"] = "test-key",
        };
        if (Broker == "rabbitmq")
            settings["RABBITMQ_URL"] = RabbitMqUrl;
        // In-memory mode is the single-process default: streams stay in process too.
        if (Broker != "inmemory")
            settings["REDIS_URL"] = RedisUrl;
        foreach (var (key, value) in _common)
            settings[key] = value;
        return settings;
    }

    public async Task StartGatewayAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreePort.Next();
        var settings = Settings();
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;
        settings["HOST"] = "127.0.0.1";
        settings["PORT"] = port.ToString(CultureInfo.InvariantCulture);
        var gateway = ServiceProcess.StartDotnet($"gateway-{_gateways.Count + 1}", RepoPaths.Gateway, settings);
        var url = new Uri($"http://127.0.0.1:{port}");
        _gateways.Add((gateway, url));
        await gateway.WaitForHttpAsync(new Uri(url, "/health"), TimeSpan.FromSeconds(60));
    }

    public async Task<ServiceProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = Settings();
        settings.TryAdd("CHAT_CONCURRENCY", "8");
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;
        var worker = ServiceProcess.StartDotnet($"chat-worker-{_workers.Count + 1}", RepoPaths.ChatWorker, settings);
        _workers.Add(worker);
        await worker.WaitForOutputAsync("Chat worker on", TimeSpan.FromSeconds(60));
        return worker;
    }

    public async Task<ServiceProcess> StartEmbeddingWorkerAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = Settings();
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;
        var worker = ServiceProcess.StartDotnet($"embedding-worker-{_workers.Count + 1}", RepoPaths.EmbeddingWorker, settings);
        _workers.Add(worker);
        await worker.WaitForOutputAsync("Embedding worker on", TimeSpan.FromSeconds(60));
        return worker;
    }

    /// <summary>Where one gateway listens.</summary>
    public Uri UrlOf(int gateway) => _gateways[gateway].Url;

    /// <summary>A client of one gateway (the first unless told).</summary>
    public HttpClient Client(int gateway = 0) => new(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue })
    {
        BaseAddress = _gateways[gateway].Url,
        Timeout = TimeSpan.FromSeconds(120),
    };

    /// <summary>Everything the processes printed, for assertion messages.</summary>
    public string Logs() =>
        string.Join("\n\n", _gateways.Select(g => g.Process).Concat(_workers).Select(p => $"--- {p.Name} ---\n{p.Output}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers)
            await worker.DisposeAsync();
        foreach (var (gateway, _) in _gateways)
            await gateway.DisposeAsync();
        await Provider.DisposeAsync();
        if (_redis is not null)
            await _redis.DisposeAsync();
        if (RedisCluster is not null)
            await RedisCluster.DisposeAsync();
    }

    /// <summary>Polls GET /chat/{id} until the task ends (<see cref="Chats.WaitForEndAsync"/>); the processes' logs on a timeout.</summary>
    public Task<JsonElement> WaitForEndAsync(HttpClient http, string taskId, TimeSpan timeout) => Chats.WaitForEndAsync(http, taskId, timeout, Logs);

    /// <summary>CPU time so far of the gateway, the first chat worker, Redis and this process (the fake provider and the clients), for benchmarks.</summary>
    public Dictionary<string, TimeSpan> CpuTimes() => new()
    {
        ["gateway"] = ProcessStats.CpuTime(Gateway!.Pid),
        ["worker"] = ProcessStats.CpuTime(Workers[0].Pid),
        ["Redis"] = RedisCluster is { } nodes
            ? nodes.Nodes.Where(n => !n.Process.HasExited).Aggregate(TimeSpan.Zero, (sum, n) => sum + ProcessStats.CpuTime(n.Process.Pid))
            : ProcessStats.CpuTime(Redis.Pid),
        ["provider + clients"] = ProcessStats.CpuTime(Environment.ProcessId),
    };

    /// <summary>What each process of <see cref="CpuTimes"/> used since <paramref name="before"/>.</summary>
    public Dictionary<string, TimeSpan> CpuSince(Dictionary<string, TimeSpan> before) =>
        CpuTimes().ToDictionary(p => p.Key, p => p.Value - before[p.Key]);

    /// <summary>Calls of each command the cluster's redis-server has run so far (INFO commandstats), by command name.</summary>
    public async Task<Dictionary<string, long>> RedisCommandCallsAsync()
    {
        await using var redis = await Redis.ConnectAsync();
        var info = await redis.GetServer(redis.GetEndPoints()[0]).InfoRawAsync("commandstats") ?? "";
        return info.Split('\n').Where(l => l.StartsWith("cmdstat_", StringComparison.Ordinal)).ToDictionary(
            l => l["cmdstat_".Length..l.IndexOf(':')],
            l => long.Parse(l[(l.IndexOf("calls=", StringComparison.Ordinal) + 6)..l.IndexOf(',')], System.Globalization.CultureInfo.InvariantCulture));
    }

    public Task<(string TaskId, string SessionId)> PostChatAsync(HttpClient http, object body) => Chats.PostAsync(http, body);
}
