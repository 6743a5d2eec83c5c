using System.Globalization;
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

    Cluster(RabbitMqServer rabbitMq, string vhost, string rabbitMqUrl, RedisServer redis, FakeOpenAiServer provider)
    {
        RabbitMq = rabbitMq;
        VirtualHost = vhost;
        RabbitMqUrl = rabbitMqUrl;
        Redis = redis;
        Provider = provider;
    }

    public RabbitMqServer RabbitMq { get; }
    public string VirtualHost { get; }
    public string RabbitMqUrl { get; }
    public RedisServer Redis { get; }
    public FakeOpenAiServer Provider { get; }
    public ServiceProcess? Gateway { get; private set; }
    public IReadOnlyList<ServiceProcess> Workers => _workers;
    public Uri GatewayUrl { get; private set; } = null!;

    public static async Task<Cluster> StartAsync(string name, int workers = 1, bool gateway = true, IReadOnlyDictionary<string, string>? gatewaySettings = null)
    {
        var rabbitMq = await SharedServices.RabbitMqAsync();
        var vhost = $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)];
        var url = await rabbitMq.CreateVirtualHostAsync(vhost);
        var redis = await RedisServer.StartAsync();
        var provider = await FakeOpenAiServer.StartAsync();
        var cluster = new Cluster(rabbitMq, vhost, url, redis, provider);
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

    public Dictionary<string, string> Settings() => new()
    {
        ["BROKER"] = "rabbitmq",
        ["RABBITMQ_URL"] = RabbitMqUrl,
        ["REDIS_URL"] = Redis.Url,
        ["OPENAI_BASE_URL"] = Provider.BaseUrl.ToString(),
        ["OPENAI_API_KEY"] = "test-key",
    };

    public async Task StartGatewayAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreePort.Next();
        var settings = Settings();
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;
        settings["HOST"] = "127.0.0.1";
        settings["PORT"] = port.ToString(CultureInfo.InvariantCulture);
        Gateway = ServiceProcess.StartDotnet("gateway", RepoPaths.Gateway, settings);
        GatewayUrl = new Uri($"http://127.0.0.1:{port}");
        await Gateway.WaitForHttpAsync(new Uri(GatewayUrl, "/health"), TimeSpan.FromSeconds(60));
    }

    public async Task<ServiceProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = Settings();
        settings["CHAT_CONCURRENCY"] = "8";
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
            settings[key] = value;
        var worker = ServiceProcess.StartDotnet($"chat-worker-{_workers.Count + 1}", RepoPaths.ChatWorker, settings);
        _workers.Add(worker);
        await worker.WaitForOutputAsync("Chat worker on", TimeSpan.FromSeconds(60));
        return worker;
    }

    public HttpClient Client() => new() { BaseAddress = GatewayUrl, Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>Everything the processes printed, for assertion messages.</summary>
    public string Logs() =>
        string.Join("\n\n", new[] { Gateway }.Concat(_workers).OfType<ServiceProcess>().Select(p => $"--- {p.Name} ---\n{p.Output}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers)
            await worker.DisposeAsync();
        if (Gateway is not null)
            await Gateway.DisposeAsync();
        await Provider.DisposeAsync();
        await Redis.DisposeAsync();
    }
}
