using System.Text.Json;
using LlmStream.ChatWorker;
using LlmStream.EmbeddingWorker;
using LlmStream.Gateway;
using LlmStream.Gateway.Access;
using LlmStream.Gateway.Embeddings;
using LlmStream.Gateway.Intake;
using LlmStream.Gateway.Operations;
using LlmStream.Providers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

public static class GatewayExtensions
{
    /// <summary>
    /// The gateway's services: its HTTP APIs' intake, access control and operations, over the sessions, providers and
    /// messaging of the deployment. In the single-process default (BROKER=inmemory) it also runs the chat and embedding
    /// workers.
    /// </summary>
    public static WebApplicationBuilder AddGateway(this WebApplicationBuilder builder, Deployment deployment)
    {
        builder.AddValidatedSettings<GatewayOptions>();
        var options = builder.Configuration.Settings<GatewayOptions>();
        var embedded = deployment.IsSingleProcess;
        builder.WebHost.UseUrls($"http://{options.ListenHost(embedded)}:{options.Port}");
        // JsonBody enforces MAX_REQUEST_BYTES with a 413 problem. Kestrel's own limit is a looser backstop, so it
        // can still drain a moderately larger body after answering and the client reads the 413 instead of a reset.
        var embeddingLimits = builder.Configuration.Settings<EmbeddingOptions>();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize =
            Math.Max(16L * 1024 * 1024, 4L * Math.Max(options.MaxRequestBytes, embeddingLimits.MaxRequestBytes)));
        // A request's work continues on the socket thread that read it instead of waking a thread-pool thread: a fifth of
        // the gateway's CPU per request under load (docs/benchmarks.md). Safe because nothing long runs before the first
        // await on the way: counting a long prompt moves to the thread pool first (PromptBudget).
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);

        builder.AddSessions(deployment);
        builder.AddProviders(deployment);
        if (embedded)
        {
            builder.AddChatWorker(deployment);
            builder.AddEmbeddingWorker(deployment);
        }
        builder.AddMessaging(deployment, consumers =>
        {
            if (embedded)
                consumers.AddChatConsumer(builder.Configuration).AddEmbeddingConsumer(builder.Configuration);
        });
        builder.AddStreamWakeUps(deployment);
        // /stats, the gauges of /metrics, the workers in /health/full, and the orphaned-task check.
        builder.Services.AddSingleton<ClusterStats>();
        builder.Services.AddHostedService<ClusterGauges>();
        builder.Services.AddHealthChecks().AddCheck<WorkersHealthCheck>("workers");
        builder.Services.AddHostedService<OrphanedTasks>();

        builder.Services.AddSingleton<Outages>();
        builder.Services.AddSingleton<ChatIntake>();
        builder.Services.AddSingleton<PromptBudget>();
        builder.Services.AddSingleton<EmbeddingIntake>();
        builder.Services.AddOptions<LlmStream.Gateway.Access.ApiKeyOptions>().Bind(builder.Configuration).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<LlmStream.Gateway.Access.ApiKeyOptions>, ApiKeyOptionsValidator>();
        // API_KEY_RPM holds across gateways when they share Redis.
        if (deployment.UsesRedis)
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
        builder.Services.AddExceptionHandler<StoreFailureHandler>();
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        });
        builder.Services.AddOpenApi();
        builder.Services.AddHostedService<GatewayStartupReport>();
        builder.Services.AddHostedService<GatewayWarmUp>();
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
        app.UseHeadAsGet();
        app.RefuseWorkWhileStopping();
        // Before the API keys: a preflight carries no key, and a 401 must still reach the page's script.
        if (app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.AllowedOrigins.Count > 0)
            app.UseCors();
        app.UseApiKeys();
        // The chat page ships next to the gateway's binaries (web/ is copied at build). Looked for only when no endpoint
        // matched: otherwise every API request would first ask the file system for a file of its path.
        var web = new PhysicalFileProvider(Path.Combine(AppContext.BaseDirectory, "web"));
        app.UseWhen(context => context.GetEndpoint() is null, page => page
            .UseDefaultFiles(new DefaultFilesOptions { FileProvider = web })
            .UseStaticFiles(new StaticFileOptions { FileProvider = web }));
        return app;
    }

    /// <summary>
    /// After SIGTERM a gateway takes no new work: a POST (a chat, an embedding batch) gets 503 with Retry-After on the
    /// connection it came on, so the client goes to another gateway; reads and cancels are still served meanwhile.
    /// </summary>
    static void RefuseWorkWhileStopping(this WebApplication app)
    {
        var stop = app.Services.GetRequiredService<GracefulStop>();
        app.Use(async (context, next) =>
        {
            if (!stop.IsStopping || !HttpMethods.IsPost(context.Request.Method))
            {
                await next(context);
                return;
            }
            if (context.Request.Path.StartsWithSegments("/v1"))
            {
                await OpenAiError.WriteStoppingAsync(context);
                return;
            }
            context.Response.Headers.Connection = "close";
            await Problems.Unavailable(context.Response, "this gateway is stopping and takes no new work; send the request again (another gateway takes it)", retryAfterSeconds: 1)
                .ExecuteAsync(context);
        });
    }

    /// <summary>
    /// Whether PORT is free on HOST, checked before anything starts: a port in use is one line naming it and exit code 1,
    /// not a failed start with stack traces (RunService still says it in one line if the port is taken in between).
    /// </summary>
    public static bool CanListen(this WebApplication app)
    {
        var gateway = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
        var broker = app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value;
        var host = gateway.ListenHost(broker.Kind == BrokerKind.InMemory);
        if (!System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var address))
            return true; // a host name: Kestrel resolves it and reports a clash itself
        try
        {
            using var probe = new System.Net.Sockets.Socket(address.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            // As Kestrel binds on Linux: a port left in TIME_WAIT by a process just stopped is not "in use".
            probe.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Socket, System.Net.Sockets.SocketOptionName.ReuseAddress, true);
            probe.Bind(new System.Net.IPEndPoint(address, gateway.Port));
            return true;
        }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode is System.Net.Sockets.SocketError.AddressAlreadyInUse or System.Net.Sockets.SocketError.AccessDenied
                                                              or System.Net.Sockets.SocketError.AddressNotAvailable)
        {
            Serilog.Log.Fatal("Cannot listen on {Host}:{Port}: {Reason}. Set PORT (or HOST) to another, or stop the process that uses it",
                host, gateway.Port, e.SocketErrorCode switch
                {
                    System.Net.Sockets.SocketError.AddressAlreadyInUse => "the port is in use by another process",
                    System.Net.Sockets.SocketError.AccessDenied => "not permitted (a port below 1024 needs privileges)",
                    _ => "this machine has no such address (HOST)",
                });
            Serilog.Log.CloseAndFlush();
            return false;
        }
    }

    /// <summary>The OpenAPI document at /openapi/v1.json and a readable reference at /docs.</summary>
    public static WebApplication MapGatewayDocs(this WebApplication app)
    {
        app.MapOpenApi();
        // Served whole from this process: no fonts from a CDN, no telemetry, no buttons that lead to Scalar's hosted services.
        app.MapScalarApiReference("/docs", scalar =>
        {
            scalar.WithTitle("LlmStream API");
            scalar.DefaultFonts = false;
            scalar.Telemetry = false;
            scalar.HideClientButton = true;
            scalar.ShowDeveloperTools = DeveloperToolsVisibility.Never;
            scalar.Agent = new ScalarAgentOptions { Disabled = true };
            scalar.Mcp = new ScalarMcpOptions { Disabled = true };
            scalar.CustomCss = "a[href^='https://scalar.com'] { display: none; }"; // its "Powered by" link
        });
        return app;
    }
}
