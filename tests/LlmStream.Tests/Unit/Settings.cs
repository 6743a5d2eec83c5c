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

    [TestCase("localhost:6379")]
    [TestCase("http://localhost")]
    [TestCase("redis://host/notanumber")]
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
    public void Never_echo_a_password() =>
        Assert.That(SettingText.Redact("amqp://user:hunter2@host/vh"), Is.EqualTo("amqp://user:***@host/vh"));

    [TestCase("BROKER", "kafka", "BROKER='kafka' is not one of rabbitmq, redis, inmemory")]
    [TestCase("BROKER", "rabbitmq", "RABBITMQ_URL is required when BROKER=rabbitmq")]
    [TestCase("LLM_TIMEOUT", "0", "LLM_TIMEOUT=0 must be a number of seconds between 1 and 86400")]
    [TestCase("CHAT_CONCURRENCY", "0", "CHAT_CONCURRENCY must be between 1 and 10000")]
    [TestCase("PORT", "70000", "PORT must be between 1 and 65535")]
    [TestCase("LLM_TIMEOUT", "abc", "LLM_TIMEOUT must be a whole number, not 'abc'")]
    [TestCase("CHAT_CONCURRENCY", "4.5", "CHAT_CONCURRENCY must be a whole number, not '4.5'")]
    [TestCase("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317' must be an http:// or https:// URL")]
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
}
