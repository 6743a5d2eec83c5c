using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// The settings of the Python original (FastAPI + Celery) that its users bring in their .env. Each is either read as
/// ours (said in one start-up line per setting) or named in one start-up warning with what replaces it; none is
/// silently ignored. An old name and its new one that disagree stop the start with one line naming both.
/// </summary>
public sealed class OriginalSettings
{
    /// <summary>The same meaning under another name: the value is ours as it is.</summary>
    static readonly (string Old, string New)[] Renamed =
    [
        ("OPENAI_DEFAULT_MODEL", "LLM_MODEL"),
        ("OPENAI_TIMEOUT", "LLM_TIMEOUT"),
        ("CELERY_CONCURRENCY", "CHAT_CONCURRENCY"),
        ("CELERY_MAX_RETRIES", "RETRY_LIMIT"),
        ("CELERY_RESULT_EXPIRES", "RESULT_TTL"),
    ];

    /// <summary>Not read: what does its work here.</summary>
    static readonly (string Old, string Instead)[] Replaced =
    [
        ("CELERY_QUEUES", "not needed: every chat worker reads high, default and low and shares its slots among them (PRIORITY_FAIRNESS)"),
        ("CELERY_POOL", "not needed: workers run on async I/O; CHAT_CONCURRENCY is how many generations one runs at once"),
        ("CELERY_PREFETCH_MULTIPLIER", "not needed: a worker takes only the messages it has slots for"),
        ("CELERY_RATE_LIMIT", "use LLM_RPM and LLM_TPM, which hold for the whole cluster rather than per worker"),
        ("CELERY_TASK_TIME_LIMIT", "use LLM_TIMEOUT"),
        ("CELERY_TASK_SOFT_TIME_LIMIT", "use LLM_TIMEOUT"),
        ("CELERY_RETRY_BACKOFF_MAX", "use RETRY_BASE_MS (the backoff stops growing at 60 s)"),
        ("CELERY_MAX_MEMORY_PER_CHILD", "not needed: there are no child processes to recycle"),
        ("CELERY_LOGLEVEL", "use Serilog__MinimumLevel__Default"),
        ("LOG_LEVEL", "use Serilog__MinimumLevel__Default"),
        ("CELERY_BROKER_URL", "use RABBITMQ_URL, or BROKER=redis with REDIS_URL"),
        ("UVICORN_WORKERS", "not needed: one gateway process serves on every core; run more gateways behind a load balancer to scale out"),
        ("API_TIMEOUT", "use LLM_TIMEOUT (a /v1 request waits as long as its generation may run)"),
        ("FLOWER_PORT", "use the RabbitMQ management UI, GET /stats or the dashboard page"),
        ("UI_PORT", "use WEB_PORT (compose)"),
        ("API_URL", "use PUBLIC_HOST and GATEWAY_PORT (compose), or web/config.js"),
        ("OPENAI_ORG_ID", "not sent: requests go out under the key's own organization"),
    ];

    /// <summary>Every name of the original's this reads or names.</summary>
    public static IEnumerable<string> Names =>
        Renamed.Select(r => r.Old).Concat(Replaced.Select(r => r.Old)).Concat(["BROKER_URL", "RESULT_BACKEND"]);

    readonly List<string> _read = [];
    readonly List<string> _notRead = [];
    readonly List<string> _conflicts = [];

    /// <summary>One line per setting of the original read as ours.</summary>
    public IReadOnlyList<string> Read => _read;

    /// <summary>The original's settings that are set and not read, each with what replaces it.</summary>
    public IReadOnlyList<string> NotRead => _notRead;

    /// <summary>Old and new names set to different values.</summary>
    public IReadOnlyList<string> Conflicts => _conflicts;

    /// <summary>
    /// Reads the original's names from <paramref name="configuration"/> and adds, as a source of its own, the values
    /// they give our settings where ours are unset. URLs are never echoed (they may hold passwords).
    /// </summary>
    public static OriginalSettings Apply(IConfigurationManager configuration)
    {
        var report = new OriginalSettings();
        var mapped = new Dictionary<string, string?>();
        foreach (var (old, @new) in Renamed)
        {
            if (Value(configuration, old) is { } value)
                report.Map(configuration, mapped, old, @new, value, secret: false);
        }

        // BROKER_URL picked Celery's broker: amqp:// is our RabbitMQ, redis:// our Redis Streams broker.
        if (Value(configuration, "BROKER_URL") is { } broker)
        {
            if (broker.StartsWith("amqp", StringComparison.OrdinalIgnoreCase))
                report.Map(configuration, mapped, "BROKER_URL", "RABBITMQ_URL", broker, secret: true);
            else if (broker.StartsWith("redis", StringComparison.OrdinalIgnoreCase))
            {
                report.Map(configuration, mapped, "BROKER_URL", "BROKER", "redis", secret: false, shown: "redis (a redis:// BROKER_URL)");
                report.Map(configuration, mapped, "BROKER_URL", "REDIS_URL", broker, secret: true);
            }
            else
                report._notRead.Add("BROKER_URL: neither amqp:// nor redis://; use RABBITMQ_URL, or BROKER=redis with REDIS_URL");
        }
        if (Value(configuration, "RESULT_BACKEND") is { } backend)
        {
            if (backend.StartsWith("redis", StringComparison.OrdinalIgnoreCase))
                report.Map(configuration, mapped, "RESULT_BACKEND", "REDIS_URL", backend, secret: true);
            else
                report._notRead.Add("RESULT_BACKEND: not a redis:// URL; use REDIS_URL, where task records and streams live");
        }

        foreach (var (old, instead) in Replaced)
        {
            if (Value(configuration, old) is not null)
                report._notRead.Add($"{old}: {instead}");
        }
        if (mapped.Count > 0)
            configuration.AddInMemoryCollection(mapped);
        return report;
    }

    void Map(IConfiguration configuration, Dictionary<string, string?> mapped, string old, string @new, string value, bool secret, string? shown = null)
    {
        var current = mapped.TryGetValue(@new, out var pending) ? pending : Value(configuration, @new);
        if (current is null)
        {
            mapped[@new] = value;
            _read.Add($"{old}, the original's setting, is read as {@new}={(secret ? SettingText.Redact(value) : shown ?? value)}");
        }
        else if (!string.Equals(current.Trim(), value.Trim(), StringComparison.Ordinal))
        {
            _conflicts.Add(secret
                ? $"{old} (the original's name) and {@new} are both set and disagree: keep {@new} alone"
                : $"{old}={value} (the original's name) and {@new}={current} are both set and disagree: keep {@new} alone");
        }
    }

    static string? Value(IConfiguration configuration, string name) => configuration[name] is { Length: > 0 } value && value.Trim().Length > 0 ? value : null;
}

/// <summary>Stops the start when an old and a new name disagree (HasValidSettings prints the line).</summary>
public sealed class OriginalSettingsCheck;

public sealed class OriginalSettingsValidator(OriginalSettings report) : IValidateOptions<OriginalSettingsCheck>
{
    public ValidateOptionsResult Validate(string? name, OriginalSettingsCheck options) =>
        report.Conflicts.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(report.Conflicts);
}
