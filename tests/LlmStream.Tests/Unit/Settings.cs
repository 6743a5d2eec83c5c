using LlmStream.Providers;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Unit;

public sealed class Settings
{
    [TestCase("redis://localhost:6380/2", "localhost:6380", 2, null)]
    [TestCase("redis://:secret@cache/0", "cache:6379", 0, "secret")]
    [TestCase("redis://127.0.0.1", "127.0.0.1:6379", null, null)]
    public void Read_redis_urls(string url, string endpoint, int? db, string? password)
    {
        Assert.That(RedisUrl.TryParse(url, out var options, out var error), Is.True, error);
        Assert.That(options.EndPoints.Single().ToString(), Does.EndWith(endpoint));
        Assert.That(options.DefaultDatabase, Is.EqualTo(db));
        Assert.That(options.Password, Is.EqualTo(password));
    }

    [Test]
    public void Read_a_redis_cluster_as_seed_nodes()
    {
        Assert.That(RedisUrl.TryParse("redis://:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002", out var options, out var error), Is.True, error);
        Assert.That(options.EndPoints.Select(e => e.ToString()), Is.EqualTo(new[] { "10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002" }));
        Assert.That(options.Password, Is.EqualTo("pw"));
        Assert.That(options.DefaultDatabase, Is.Null);
    }

    [TestCase("localhost:6379")]
    [TestCase("http://localhost")]
    [TestCase("redis://host/notanumber")]
    [TestCase("redis://host1:7000,,host2:7001")]
    [TestCase("redis://host1:7000,host2:port")]
    public void Reject_what_is_not_a_redis_url(string url) =>
        Assert.That(RedisUrl.TryParse(url, out _, out _), Is.False);

    [Test]
    public void Choose_the_broker_from_what_is_configured()
    {
        Assert.That(new BrokerOptions().Kind, Is.EqualTo(BrokerKind.InMemory));
        Assert.That(new BrokerOptions { RabbitMqUrl = "amqp://h" }.Kind, Is.EqualTo(BrokerKind.RabbitMq));
        Assert.That(new BrokerOptions { Broker = "Redis" }.Kind, Is.EqualTo(BrokerKind.Redis));
    }

    [Test]
    [TestCase("amqp://user:hunter2@host/vh", "amqp://user:***@host/vh")]
    [TestCase("amqp://user:hunter2@h1:5672,h2:5673/vh", "amqp://user:***@h1:5672,h2:5673/vh")]
    [TestCase("redis://hunter2@cache:6379/0", "redis://***@cache:6379/0")]
    [TestCase("redis://:hunter2@n1:7000,n2:7001", "redis://:***@n1:7000,n2:7001")]
    [TestCase("redis://cache:6379/0", "redis://cache:6379/0")]
    public void Never_echo_a_password(string url, string shown) =>
        Assert.That(SettingText.Redact(url), Is.EqualTo(shown));

    [Test]
    public void Read_a_rabbitmq_cluster_as_its_nodes()
    {
        Assert.That(RabbitMqUrl.TryParse("amqp://u:p@n1:5672,n2:5673,n3/vh", out var address, out var error), Is.True, error);
        Assert.That(address.Nodes.Select(n => (n.Host, n.Port, n.UserInfo, n.AbsolutePath)), Is.EqualTo(new[]
        {
            ("n1", 5672, "u:p", "/vh"), ("n2", 5673, "u:p", "/vh"), ("n3", -1, "u:p", "/vh"),
        }));
        Assert.That(address.IsCluster, Is.True);
        Assert.That(RabbitMqUrl.TryParse("amqp://u:p@n1:5672,,n2/vh", out _, out _), Is.False);
        Assert.That(RabbitMqUrl.TryParse("http://n1/vh", out _, out _), Is.False);
    }

    [TestCase("BROKER", "kafka", "BROKER='kafka' is not one of rabbitmq, redis, inmemory")]
    [TestCase("RABBITMQ_QUEUE_TYPE", "stream", "RABBITMQ_QUEUE_TYPE='stream' is not one of classic, quorum")]
    [TestCase("BROKER", "rabbitmq", "RABBITMQ_URL is required when BROKER=rabbitmq")]
    [TestCase("LLM_TIMEOUT", "0", "LLM_TIMEOUT=0 must be a number of seconds between 1 and 86400")]
    [TestCase("CHAT_CONCURRENCY", "0", "CHAT_CONCURRENCY must be between 1 and 10000")]
    [TestCase("PORT", "70000", "PORT must be between 1 and 65535")]
    [TestCase("LLM_TIMEOUT", "abc", "LLM_TIMEOUT must be a whole number, not 'abc'")]
    [TestCase("CHAT_CONCURRENCY", "4.5", "CHAT_CONCURRENCY must be a whole number, not '4.5'")]
    [TestCase("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317' must be an http:// or https:// URL")]
    [TestCase("SHUTDOWN_TIMEOUT", "0", "SHUTDOWN_TIMEOUT must be between 1 and 3600 seconds")]
    [TestCase("LLM_MODEL_CONTEXT_TOKENS", "llama3:8192", "LLM_MODEL_CONTEXT_TOKENS: 'llama3:8192' is not model=number")]
    [TestCase("ORPHAN_GRACE_SECONDS", "1", "ORPHAN_GRACE_SECONDS must be between 3 and 86400")]
    [TestCase("HOST", " ", "HOST must not be empty")]
    [TestCase("MAX_FINISHED_STREAMS", "0", "MAX_FINISHED_STREAMS must be between 1 and 10000000")]
    public async Task Stop_the_gateway_at_start_with_one_line_naming_a_bad_setting(string setting, string value, string expected)
    {
        await using var gateway = ServiceProcess.StartDotnet("gateway", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["HOST"] = "127.0.0.1",
            ["PORT"] = FreePort.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            [setting] = value,
        });
        var exitCode = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.That(exitCode, Is.EqualTo(1), gateway.Output);
        var fatal = gateway.Output.Split('\n').Where(l => l.Contains("FTL")).ToList();
        Assert.That(fatal, Has.Count.EqualTo(1), gateway.Output);
        Assert.That(fatal[0], Does.Contain(expected));
    }

    [Test]
    public async Task Stop_the_gateway_with_one_line_naming_PORT_when_the_port_is_taken()
    {
        var port = FreePort.Next();
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
        taken.Start();
        await using var gateway = ServiceProcess.StartDotnet("gateway", RepoPaths.Gateway, new Dictionary<string, string>
        {
            ["HOST"] = "127.0.0.1",
            ["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        Assert.That(await gateway.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(1), gateway.Output);
        var lines = gateway.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), gateway.Output);
        Assert.That(lines[0], Does.Contain("FTL").And.Contain($"127.0.0.1:{port}").And.Contain("PORT"));
    }

    [Test]
    public void Apply_rate_limits_to_a_real_provider_and_none_to_the_simulated_model()
    {
        var simulated = new LlmStream.Providers.RateLimiting.RateLimitOptions();
        simulated.ApplyDefaults(simulated: true);
        Assert.That((simulated.RequestsPerMinute, simulated.TokensPerMinute), Is.EqualTo((0, 0)));

        var real = new LlmStream.Providers.RateLimiting.RateLimitOptions();
        real.ApplyDefaults(simulated: false);
        Assert.That((real.RequestsPerMinute, real.TokensPerMinute), Is.EqualTo((500, 100_000)));

        var set = new LlmStream.Providers.RateLimiting.RateLimitOptions { RequestsPerMinuteSetting = 60, TokensPerMinuteSetting = 0 };
        set.ApplyDefaults(simulated: true);
        Assert.That((set.RequestsPerMinute, set.TokensPerMinute), Is.EqualTo((60, 0)), "what is set holds whatever the provider");
    }

    [TestCase("gpt-4o-mini", 128_000)]
    [TestCase("gpt-4o-mini-2024-07-18", 128_000)]
    [TestCase("gpt-4.1-nano", 1_047_576)]
    [TestCase("gpt-4", 8_192)]
    [TestCase("gpt-3.5-turbo-0125", 16_385)]
    [TestCase("llama3", 8_192)]
    [TestCase("my-deployment", 32_000)]
    public void Know_a_models_context_window_by_its_name(string model, int tokens)
    {
        var options = new ModelOptions { ContextTokens = 32_000, ModelContextTokens = "llama3=8192" };
        Assert.That(options.ContextLimit(model), Is.EqualTo(tokens));
    }

    [Test]
    public void Listen_on_loopback_alone_in_the_single_process_default()
    {
        Assert.That(new LlmStream.Gateway.GatewayOptions().ListenHost(singleProcess: true), Is.EqualTo("127.0.0.1"));
        Assert.That(new LlmStream.Gateway.GatewayOptions().ListenHost(singleProcess: false), Is.EqualTo("0.0.0.0"));
        Assert.That(new LlmStream.Gateway.GatewayOptions { Host = "0.0.0.0" }.ListenHost(singleProcess: true), Is.EqualTo("0.0.0.0"));
    }
}
