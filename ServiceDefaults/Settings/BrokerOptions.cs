using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Settings;

public enum BrokerKind { InMemory, RabbitMq, Redis }

/// <summary>Where messages travel and where token streams and task records live.</summary>
public sealed class BrokerOptions
{
    /// <summary>rabbitmq, redis or inmemory. Unset: rabbitmq when RABBITMQ_URL is set, else inmemory.</summary>
    [ConfigurationKeyName("BROKER")]
    public string? Broker { get; set; }

    [ConfigurationKeyName("RABBITMQ_URL")]
    public string? RabbitMqUrl { get; set; }

    /// <summary>classic (one node holds each queue, with priorities inside it) or quorum (replicated on a cluster's nodes).</summary>
    [ConfigurationKeyName("RABBITMQ_QUEUE_TYPE")]
    public string? RabbitMqQueueType { get; set; }

    /// <summary>The work queues are quorum queues (RABBITMQ_QUEUE_TYPE=quorum).</summary>
    public bool QuorumQueues => string.Equals(RabbitMqQueueType?.Trim(), "quorum", StringComparison.OrdinalIgnoreCase);

    /// <summary>Unset in single-process mode: streams and task records then stay in process.</summary>
    [ConfigurationKeyName("REDIS_URL")]
    public string? RedisUrl { get; set; }

    public BrokerKind Kind => Broker?.Trim().ToLowerInvariant() switch
    {
        null or "" => string.IsNullOrWhiteSpace(RabbitMqUrl) ? BrokerKind.InMemory : BrokerKind.RabbitMq,
        "rabbitmq" => BrokerKind.RabbitMq,
        "redis" => BrokerKind.Redis,
        "inmemory" => BrokerKind.InMemory,
        _ => throw new InvalidOperationException($"BROKER='{Broker}' is not one of rabbitmq, redis, inmemory"),
    };

    /// <summary>
    /// <see cref="Kind"/> without throwing: false for an invalid BROKER, which options validation reports at start
    /// with the setting named (registration must not fail first with a less helpful error).
    /// </summary>
    public bool TryGetKind(out BrokerKind kind)
    {
        try
        {
            kind = Kind;
            return true;
        }
        catch (InvalidOperationException)
        {
            kind = default;
            return false;
        }
    }

    public bool UsesRedisStore => !string.IsNullOrWhiteSpace(RedisUrl);
}

/// <summary>One clear message per bad setting, naming the environment variable.</summary>
public sealed class BrokerOptionsValidator : IValidateOptions<BrokerOptions>
{
    public ValidateOptionsResult Validate(string? name, BrokerOptions options)
    {
        var failures = new List<string>();
        BrokerKind kind;
        try
        {
            kind = options.Kind;
        }
        catch (InvalidOperationException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }

        if (kind == BrokerKind.RabbitMq)
        {
            if (string.IsNullOrWhiteSpace(options.RabbitMqUrl))
                failures.Add("RABBITMQ_URL is required when BROKER=rabbitmq (amqp://user:pass@host:5672/vhost)");
            else if (!RabbitMqUrl.TryParse(options.RabbitMqUrl, out _, out var rabbitMqError))
                failures.Add($"RABBITMQ_URL='{SettingText.Redact(options.RabbitMqUrl)}' is invalid: {rabbitMqError}");
        }
        if (options.RabbitMqQueueType?.Trim().ToLowerInvariant() is not (null or "" or "classic" or "quorum"))
            failures.Add($"RABBITMQ_QUEUE_TYPE='{options.RabbitMqQueueType}' is not one of classic, quorum");

        if (kind != BrokerKind.InMemory && !options.UsesRedisStore)
            failures.Add($"REDIS_URL is required when BROKER={kind.ToString().ToLowerInvariant()}: token streams and task status live in Redis");

        if (options.UsesRedisStore && !RedisUrl.TryParse(options.RedisUrl!, out _, out var error))
            failures.Add($"REDIS_URL='{SettingText.Redact(options.RedisUrl)}' is invalid: {error}");

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>A worker run as its own process needs a broker it shares with the gateway.</summary>
public sealed class SeparateWorkerBrokerValidator(string worker, string process) : IValidateOptions<BrokerOptions>
{
    // An invalid BROKER is reported by BrokerOptionsValidator.
    public ValidateOptionsResult Validate(string? name, BrokerOptions options) =>
        options.TryGetKind(out var kind) && kind == BrokerKind.InMemory
            ? ValidateOptionsResult.Fail($"BROKER=inmemory runs the {worker} inside the gateway (make run); a separate {process} needs BROKER=rabbitmq or redis")
            : ValidateOptionsResult.Success;
}
