using System.Text.Json;
using LlmStream.ChatWorker;
using LlmStream.EmbeddingWorker;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Embeddings;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Models;
using LlmStream.ServiceDefaults.Operations;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.ServiceDefaults.Tasks;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;

namespace LlmStream.Gateway;

public static class GatewayExtensions
{
    public static WebApplicationBuilder AddGateway(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<GatewayOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<GatewayOptions>, SettingsValidator<GatewayOptions>>();
        var options = builder.Configuration.Settings<GatewayOptions>();
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        // JsonBody enforces MAX_REQUEST_BYTES with a 413 problem. Kestrel's own limit is a looser backstop, so it
        // can still drain a moderately larger body after answering and the client reads the 413 instead of a reset.
        var embeddingLimits = builder.Configuration.Settings<EmbeddingOptions>();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize =
            Math.Max(16L * 1024 * 1024, 4L * Math.Max(options.MaxRequestBytes, embeddingLimits.MaxRequestBytes)));

        // BROKER=inmemory is the single-process default: the workers run inside the gateway.
        var broker = builder.Configuration.Settings<BrokerOptions>();
        var embedded = broker.TryGetKind(out var kind) && kind == BrokerKind.InMemory;
        builder.AddLlmStreamBus(consumers =>
        {
            if (embedded)
                consumers.AddChatWorker(builder.Configuration).AddEmbeddingWorker(builder.Configuration);
        });
        builder.AddStreamWakeUps();
        builder.AddClusterView();

        builder.Services.AddSingleton<ChatIntake>();
        builder.Services.AddSingleton<EmbeddingIntake>();
        builder.Services.AddOptions<ApiKeyOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<ApiKeyOptions>, ApiKeyOptionsValidator>();
        // API_KEY_RPM holds across gateways when they share Redis.
        if (broker.UsesRedisStore)
            builder.Services.AddSingleton<IApiKeyBudget, RedisApiKeyBudget>();
        else
            builder.Services.AddSingleton<IApiKeyBudget, InProcessApiKeyBudget>();
        // Problems the framework writes itself (routing's 415, 405...) still say in words what to do.
        builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = context =>
            context.ProblemDetails.Detail ??= context.ProblemDetails.Status switch
            {
                StatusCodes.Status415UnsupportedMediaType => "the body must be UTF-8 JSON (Content-Type: application/json)",
                StatusCodes.Status405MethodNotAllowed => $"{context.HttpContext.Request.Method} is not allowed on {context.HttpContext.Request.Path}",
                StatusCodes.Status404NotFound => $"nothing is served at {context.HttpContext.Request.Path}",
                _ => context.ProblemDetails.Title,
            });
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        });
        builder.Services.AddOpenApi();
        builder.Services.AddHostedService<GatewayStartupReport>();
        builder.AddPrometheusMetrics();
        // CORS_ORIGINS lets pages served elsewhere (the compose web service) call the API; unset, no CORS headers at all.
        if (options.AllowedOrigins.Count > 0)
            builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy => policy
                .WithOrigins([.. options.AllowedOrigins])
                .WithMethods("GET", "POST", "DELETE")
                .WithHeaders("Content-Type", "Authorization", "Last-Event-ID", "Idempotency-Key", "X-Priority")
                .WithExposedHeaders("Location", "Retry-After", "X-LlmStream-Task-Id")
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));
        return builder;
    }

    public static WebApplication UseGateway(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        // Before the API keys: a preflight carries no key, and a 401 must still reach the page's script.
        if (app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.AllowedOrigins.Count > 0)
            app.UseCors();
        app.UseApiKeys();
        // The chat page ships next to the gateway's binaries (web/ is copied at build).
        var web = new PhysicalFileProvider(Path.Combine(AppContext.BaseDirectory, "web"));
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = web });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = web });
        return app;
    }

    /// <summary>The OpenAPI document at /openapi/v1.json and a readable reference at /docs.</summary>
    public static WebApplication MapGatewayDocs(this WebApplication app)
    {
        app.MapOpenApi();
        app.MapScalarApiReference("/docs", scalar => scalar.WithTitle("LlmStream API"));
        return app;
    }
}

/// <summary>Prints where to open the product and what it runs on, labelling the simulated model.</summary>
public sealed class GatewayStartupReport(
    IOptions<GatewayOptions> gateway, IOptions<BrokerOptions> broker, ModelClients models,
    IHostApplicationLifetime lifetime, ILogger<GatewayStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var host = gateway.Value.Host is "0.0.0.0" or "+" or "*" ? "localhost" : gateway.Value.Host;
            var url = $"http://{host}:{gateway.Value.Port}";
            var mode = broker.Value.Kind == BrokerKind.InMemory
                ? "single process: in-memory bus, chat and embedding workers in this process, " + (broker.Value.UsesRedisStore ? "streams in Redis" : "in-process stream store")
                : $"{broker.Value.Kind} broker, streams in Redis";
            logger.LogInformation("LlmStream gateway ready ({Mode}); model provider: {Provider}", mode, models.Describe());
            logger.LogInformation("Open {ChatUrl} for the chat page, {DashboardUrl} for the dashboard, {DocsUrl} for the API reference",
                url + "/", url + "/dashboard.html", url + "/docs");
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
