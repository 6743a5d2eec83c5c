using LlmStream.ServiceDefaults.Settings;
using LlmStream.ServiceDefaults.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace LlmStream.ServiceDefaults.Hosting;

/// <summary>
/// Traces and metrics for every service. One trace per request: the gateway's HTTP request, the bus send,
/// the worker's consume (MassTransit carries the context on RabbitMQ and in memory; the Redis Streams queue
/// carries it in each entry), LlmStream's own spans and the provider's HTTP call, whose <c>traceparent</c>
/// header carries the same trace id. Spans are always recorded (log lines carry their ids); they and the
/// metrics leave the process by OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// </summary>
public static class TelemetryExtensions
{
    public const string MetricsPath = "/metrics";

    /// <summary>The activity source and meter MassTransit reports on (its DiagnosticHeaders.DefaultListenerName and InstrumentationOptions.MeterName).</summary>
    const string MassTransitName = "MassTransit";

    /// <summary>service.name when OTEL_SERVICE_NAME is not set, by the service's assembly.</summary>
    static readonly Dictionary<string, string> DefaultServiceNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["LlmStream.Gateway"] = "llmstream-gateway",
        ["LlmStream.ChatWorker"] = "llmstream-chat-worker",
        ["LlmStream.EmbeddingWorker"] = "llmstream-embedding-worker",
    };

    static string ServiceName(IConfiguration configuration, string applicationName) =>
        configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } configured ? configured
        : DefaultServiceNames.GetValueOrDefault(applicationName, applicationName);

    public static IHostApplicationBuilder AddTelemetry(this IHostApplicationBuilder builder)
    {
        var serviceName = ServiceName(builder.Configuration, builder.Environment.ApplicationName);
        builder.Services.AddOptions<TelemetryOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<TelemetryOptions>, SettingsValidator<TelemetryOptions>>();
        // The exporter reads the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, _HEADERS, _TIMEOUT) itself.
        var otlp = builder.Configuration.Settings<TelemetryOptions>().ExportsOtlp;

        builder.Services.AddMetrics();
        builder.Services.AddSingleton<LlmStreamMetrics>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceVersion: typeof(TelemetryExtensions).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing =>
            {
                tracing
                    .AddSource(LlmStreamTelemetry.SourceName)
                    .AddSource(MassTransitName) // MassTransit's send and consume spans
                    .AddAspNetCoreInstrumentation(aspNet => aspNet.Filter = http => !IsProbe(http))
                    .AddHttpClientInstrumentation();
                if (otlp)
                    tracing.AddOtlpExporter();
            })
            .WithMetrics(metrics =>
            {
                metrics
                    .AddMeter(LlmStreamTelemetry.MeterName)
                    .AddMeter(MassTransitName) // MassTransit's receive and consume counts and durations
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation();
                if (otlp)
                    metrics.AddOtlpExporter();
            });
        return builder;
    }

    /// <summary>The gateway serves every instrument as Prometheus text at GET /metrics (see <see cref="MapMetrics"/>).</summary>
    public static IHostApplicationBuilder AddPrometheusMetrics(this IHostApplicationBuilder builder)
    {
        builder.Services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddPrometheusExporter(prometheus =>
            prometheus.ScrapeResponseCacheDurationMilliseconds = 0)); // a scrape always sees the counts of now
        return builder;
    }

    /// <summary>GET /metrics: Prometheus text, open like /health (API keys do not apply to it).</summary>
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapPrometheusScrapingEndpoint(MetricsPath);
        return app;
    }

    /// <summary>Health checks and scrapes would be most of the spans and say nothing about requests.</summary>
    static bool IsProbe(HttpContext http) =>
        http.Request.Path.StartsWithSegments("/health") || http.Request.Path.StartsWithSegments(MetricsPath);
}
