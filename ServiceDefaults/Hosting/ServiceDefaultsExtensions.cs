using LlmStream.ServiceDefaults.Health;
using LlmStream.ServiceDefaults.Redis;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Events;

namespace LlmStream.ServiceDefaults.Hosting;

public static class ServiceDefaultsExtensions
{
    /// <summary>First stage of Serilog: log start-up failures before configuration is read.</summary>
    public static void CreateBootstrapLogger() =>
        Log.Logger = new LoggerConfiguration()
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture)
            .CreateBootstrapLogger();

    /// <summary>
    /// The command line for the host builder, with reloading configuration files on change turned off: the services read
    /// their settings from the environment and ship no appsettings file, yet the default watcher would follow every write
    /// under the content root (under `make cluster` the repository, where Redis, RabbitMQ and every log write), at a cost
    /// to each request.
    /// </summary>
    public static string[] HostArgs(string[] args) => [.. args, "--hostBuilder:reloadConfigOnChange=false"];

    /// <summary>
    /// Logging, telemetry, validated settings, a clean stop, the liveness check and (when the deployment uses it) the Redis
    /// connection: what every LlmStream service shares. Returns the deployment's shape, for the other registrations.
    /// </summary>
    public static Deployment AddServiceDefaults(this IHostApplicationBuilder builder)
    {
        builder.AddOriginalSettings();
        builder.Services.AddSerilog((services, logger) => logger
            .ReadFrom.Configuration(builder.Configuration)
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("MassTransit", LogEventLevel.Warning)
            // A message let go by a stopping worker goes back to the broker: expected, not a fault with a stack trace.
            .Filter.ByExcluding(e => e.Exception is WorkerStoppingException || e.Exception?.GetBaseException() is WorkerStoppingException)
            // A send the broker did not take is reported by whoever sent it (the gateway's outage log, once per outage),
            // not again by MassTransit for every send with a stack trace.
            .Filter.ByExcluding(e => e.MessageTemplate.Text.StartsWith("S-FAULT", StringComparison.Ordinal))
            // A port in use is said once, in one line, by RunService; the host's own report of it carries a stack trace.
            .Filter.ByExcluding(e => e.Exception is IOException { InnerException: Microsoft.AspNetCore.Connections.AddressInUseException })
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Service", builder.Environment.ApplicationName)
            // TraceId and SpanId come from Activity.Current (Serilog 4): a log line leads to its trace and back. The
            // suffix that prints them is the console's own, so sinks added by configuration get no extra property.
            .WriteTo.Logger(console => console
                .Enrich.With<TraceSuffix>()
                .WriteTo.Console(
                    outputTemplate: "[{Timestamp:HH:mm:ss.fff} {Level:u3}] {Message:lj} {Properties:j}{TraceSuffix:l}{NewLine}{Exception}",
                    formatProvider: System.Globalization.CultureInfo.InvariantCulture)));

        var deployment = Deployment.From(builder.Configuration);
        builder.Services.AddSingleton(deployment);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddTelemetry();
        builder.Services.AddOptions<BrokerOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<BrokerOptions>, BrokerOptionsValidator>();
        builder.AddGracefulStop();
        builder.Services.AddHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy(), [HealthTags.Live]);
        builder.Services.AddRedisConnection(deployment);
        return deployment;
    }

    /// <summary>
    /// The Python original's settings, read before anything else binds: each one set is read as ours (a line each) or
    /// named in one warning with what replaces it; an old and a new name that disagree fail validation at start.
    /// </summary>
    static void AddOriginalSettings(this IHostApplicationBuilder builder)
    {
        var original = OriginalSettings.Apply(builder.Configuration);
        builder.Services.AddSingleton(original);
        builder.Services.AddOptions<OriginalSettingsCheck>().ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<OriginalSettingsCheck>, OriginalSettingsValidator>();
        foreach (var line in original.Read)
            Log.Information("{Setting}", line);
        if (original.NotRead.Count > 0)
            Log.Warning("Settings of the original not read here: {Settings}", string.Join("; ", original.NotRead));
    }

    /// <summary>Binds <typeparamref name="T"/> from the environment and validates its data annotations at start.</summary>
    public static IHostApplicationBuilder AddValidatedSettings<T>(this IHostApplicationBuilder builder) where T : class
    {
        builder.Services.AddOptions<T>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<T>, SettingsValidator<T>>();
        return builder;
    }

    /// <summary>SHUTDOWN_TIMEOUT bounds a stop: the host waits that long for running work, then a few seconds more to leave.</summary>
    public static IHostApplicationBuilder AddGracefulStop(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<StopOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<StopOptions>, SettingsValidator<StopOptions>>();
        // The host reads its options while it is built, before settings are validated: an out-of-range value here is
        // clamped, and validation at start still reports it.
        var stop = builder.Configuration.Settings<StopOptions>().Clamped();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = stop.HostShutdownTimeout);
        builder.Services.AddSingleton<GracefulStop>();
        return builder;
    }

    /// <summary>Health endpoints for orchestrators (see <see cref="HealthEndpoints.MapHealthEndpoints"/>).</summary>
    public static IEndpointRouteBuilder MapDefaultEndpoints(this IEndpointRouteBuilder app) => app.MapHealthEndpoints();

    /// <summary>
    /// Validates every setting right after the build, before anything resolves services that depend on them:
    /// a bad one ends the process with one fatal line naming it.
    /// </summary>
    public static bool HasValidSettings(this IHost host)
    {
        try
        {
            host.Services.GetService<IStartupValidator>()?.Validate();
            return true;
        }
        catch (OptionsValidationException e)
        {
            Log.Fatal("Invalid settings: {Reason}", string.Join("; ", e.Failures));
            Log.CloseAndFlush();
            return false;
        }
        catch (InvalidOperationException e) when (SettingsReader.DescribeConversionFailure(e) is { } reason)
        {
            Log.Fatal("Invalid settings: {Reason}", reason);
            Log.CloseAndFlush();
            return false;
        }
        catch (AggregateException e) when (e.InnerExceptions.All(i => i is OptionsValidationException))
        {
            Log.Fatal("Invalid settings: {Reason}", string.Join("; ", e.InnerExceptions.Cast<OptionsValidationException>().SelectMany(i => i.Failures)));
            Log.CloseAndFlush();
            return false;
        }
    }

    /// <summary>Runs a service; a start-up failure (a bad setting above all) ends in one fatal line and exit code 1.</summary>
    public static int RunService(this IHost host)
    {
        try
        {
            host.Run();
            return 0;
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            // Expected, and said in one line: the port is taken (by another process, or another copy of this one).
            Log.Fatal("{Reason} Another process listens there: stop it, or set PORT (or HOST) to another", e.Message);
            return 1;
        }
        catch (Exception e) when (e is not HostAbortedException)
        {
            Log.Fatal(e, "{Service} stopped unexpectedly", AppDomain.CurrentDomain.FriendlyName);
            return 1;
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }
}

/// <summary>" trace=… span=…" on a line written inside a span; nothing on one written outside any.</summary>
sealed class TraceSuffix : Serilog.Core.ILogEventEnricher
{
    public void Enrich(LogEvent logEvent, Serilog.Core.ILogEventPropertyFactory propertyFactory)
    {
        if (logEvent.TraceId is { } trace)
            logEvent.AddPropertyIfAbsent(new LogEventProperty(nameof(TraceSuffix), new ScalarValue($" trace={trace} span={logEvent.SpanId}")));
    }
}
