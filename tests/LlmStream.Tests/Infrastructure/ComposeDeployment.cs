using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.Infrastructure;

/// <summary>A command's exit code and what it printed (stdout and stderr, in the order they came).</summary>
public sealed record CommandResult(int ExitCode, string Output)
{
    public CommandResult EnsureSuccess(string what) =>
        ExitCode == 0 ? this : throw new InvalidOperationException($"{what} exited with {ExitCode}:\n{Output}");
}

/// <summary>A container of the deployment, as docker inspect sees it.</summary>
public sealed record ComposeContainer(string Id, string Name, string Service, string State, string? Health, string StartedAt, string Hostname);

/// <summary>
/// deploy/docker-compose.yml on this machine's Docker engine, driven through the make targets an operator uses, with
/// its own project name and free ports. The images the compose file names come from build/standin-images.sh (no image
/// registry is reachable here); the product images are built from deploy/Dockerfile by compose, as `make up` does.
/// </summary>
public sealed class ComposeDeployment : IAsyncDisposable
{
    readonly Dictionary<string, string> _environment;

    ComposeDeployment(string project, Dictionary<string, string> environment)
    {
        Project = project;
        _environment = environment;
    }

    public string Project { get; }
    public int GatewayPort => int.Parse(_environment["GATEWAY_PORT"]);
    public int WebPort => int.Parse(_environment["WEB_PORT"]);
    public int RabbitMqUiPort => int.Parse(_environment["RABBITMQ_UI_PORT"]);
    public int PrometheusPort => int.Parse(_environment["PROMETHEUS_PORT"]);
    public Uri GatewayUrl => new($"http://127.0.0.1:{GatewayPort}");
    public string Tag => _environment["LLMSTREAM_TAG"];
    public IReadOnlyDictionary<string, string> Environment => _environment;

    /// <summary>Why no Docker engine answers here, or null when one does (make test-deps installs and starts one).</summary>
    public static async Task<string?> EngineMissingAsync()
    {
        try
        {
            var info = await RunAsync("docker", ["info", "--format", "{{.ServerVersion}}"], timeout: TimeSpan.FromSeconds(30));
            return info.ExitCode == 0 ? null : "no Docker engine answers (`docker info`: " + info.Output.Trim().Split('\n')[^1] + "); make test-deps starts one";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "no docker client on the PATH; make test-deps installs Debian's docker.io";
        }
    }

    /// <summary>Builds the stand-ins (when missing) and prepares a deployment with free ports; nothing is started yet.</summary>
    public static async Task<ComposeDeployment> PrepareAsync(string project, string rabbitMqUser, string rabbitMqPassword)
    {
        var standIns = await RunAsync(Script, ["build"], timeout: TimeSpan.FromMinutes(20));
        TestContext.Progress.WriteLine(standIns.EnsureSuccess("build/standin-images.sh build").Output.TrimEnd());
        var environment = new Dictionary<string, string>();
        foreach (var line in (await RunAsync(Script, ["env"])).EnsureSuccess("build/standin-images.sh env").Output.Split('\n'))
        {
            var assignment = line.Trim().Replace("export ", "");
            var equals = assignment.IndexOf('=');
            if (equals > 0)
                environment[assignment[..equals]] = assignment[(equals + 1)..];
        }
        Assert.That(environment.Keys, Does.Contain("DOTNET_SDK_IMAGE").And.Contain("RABBITMQ_IMAGE"), "the stand-ins' variables");

        environment["COMPOSE_PROJECT"] = project;
        environment["LLMSTREAM_TAG"] = project;
        foreach (var port in new[] { "GATEWAY_PORT", "WEB_PORT", "RABBITMQ_UI_PORT", "RABBITMQ_PORT", "REDIS_PORT", "PROMETHEUS_PORT", "JAEGER_UI_PORT" })
            environment[port] = FreePort.Next().ToString();
        environment["RABBITMQ_USER"] = rabbitMqUser;
        environment["RABBITMQ_PASS"] = rabbitMqPassword;
        // What a developer's deploy/.env or shell might set must not turn this into another deployment: the environment
        // wins over deploy/.env, so the simulated model, no API keys, RabbitMQ, no export.
        foreach (var name in new[] { "OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT",
                     "AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "API_KEYS", "OTEL_EXPORTER_OTLP_ENDPOINT", "MONITORING", "COMPOSE_PROFILES", "LLM_RPM", "LLM_TPM" })
            environment[name] = "";
        environment["BROKER"] = "rabbitmq";
        environment["PUBLIC_HOST"] = "localhost";
        var deployment = new ComposeDeployment(project, environment);
        await deployment.RemoveAsync(); // what an interrupted earlier run left
        return deployment;
    }

    public static string Script => Path.Combine(RepoPaths.Root, "build", "standin-images.sh");

    /// <summary>make TARGET ... from the repository root, with this deployment's environment.</summary>
    public Task<CommandResult> MakeAsync(params string[] arguments) =>
        RunAsync("make", ["--no-print-directory", .. arguments], _environment, TimeSpan.FromMinutes(15));

    /// <summary>docker compose (v2 when its plugin is there, else docker-compose v1) on this project, every profile included.</summary>
    public async Task<CommandResult> ComposeAsync(params string[] arguments)
    {
        var environment = new Dictionary<string, string>(_environment) { ["COMPOSE_PROFILES"] = "monitoring" };
        string[] file = ["-p", Project, "-f", Path.Combine(RepoPaths.Root, "deploy", "docker-compose.yml")];
        return (await RunAsync("docker", ["compose", "version"])).ExitCode == 0
            ? await RunAsync("docker", ["compose", .. file, .. arguments], environment, TimeSpan.FromMinutes(10))
            : await RunAsync("docker-compose", [.. file, .. arguments], environment, TimeSpan.FromMinutes(10));
    }

    /// <summary>Every container of the project (running or not), optionally of one service.</summary>
    public async Task<List<ComposeContainer>> ContainersAsync(string? service = null)
    {
        var ids = (await RunAsync("docker", ["ps", "-a", "-q", "--no-trunc", "--filter", $"label=com.docker.compose.project={Project}"]))
            .EnsureSuccess("docker ps").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids.Length == 0)
            return [];
        var inspected = (await RunAsync("docker", ["inspect", .. ids], stderr: false)).EnsureSuccess("docker inspect").Output;
        var containers = new List<ComposeContainer>();
        foreach (var c in JsonDocument.Parse(inspected).RootElement.EnumerateArray())
        {
            var state = c.GetProperty("State");
            containers.Add(new ComposeContainer(
                c.GetProperty("Id").GetString()!,
                c.GetProperty("Name").GetString()!.TrimStart('/'),
                c.GetProperty("Config").GetProperty("Labels").GetProperty("com.docker.compose.service").GetString()!,
                state.GetProperty("Status").GetString()!,
                state.TryGetProperty("Health", out var health) ? health.GetProperty("Status").GetString() : null,
                state.GetProperty("StartedAt").GetString()!,
                c.GetProperty("Config").GetProperty("Hostname").GetString()!));
        }
        return service is null ? containers : containers.Where(c => c.Service == service).ToList();
    }

    /// <summary>Waits until <paramref name="count"/> containers run and every one of them reports healthy.</summary>
    public async Task<List<ComposeContainer>> WaitHealthyAsync(int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var containers = (await ContainersAsync()).Where(c => c.State == "running").ToList();
            if (containers.Count == count && containers.All(c => c.Health == "healthy"))
            {
                TestContext.Progress.WriteLine($"{count} containers healthy {clock.Elapsed.TotalSeconds:0} s after asked");
                return containers;
            }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"after {timeout.TotalSeconds:0} s: " + string.Join(", ", containers.Select(c => $"{c.Name} {c.State}/{c.Health}")) +
                                           "\n" + (await ComposeAsync("logs", "--tail=40")).Output);
            await Task.Delay(1000);
        }
    }

    public async Task<string> LogsAsync(ComposeContainer container) =>
        (await RunAsync("docker", ["logs", container.Id])).Output;

    /// <summary>GET on the RabbitMQ management API through its published port, as this deployment's user.</summary>
    public async Task<JsonElement> ManagementAsync(string path)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{RabbitMqUiPort}"), Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_environment["RABBITMQ_USER"]}:{_environment["RABBITMQ_PASS"]}")));
        return await http.GetFromJsonAsync<JsonElement>(path);
    }

    /// <summary>The containers, network and volumes of this project, and nothing else.</summary>
    public async Task RemoveAsync() =>
        (await ComposeAsync("down", "-v", "--remove-orphans", "--timeout", "5")).EnsureSuccess("compose down -v");

    public async ValueTask DisposeAsync() => await RemoveAsync();

    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null,
        TimeSpan? timeout = null, bool stderr = true)
    {
        var info = new ProcessStartInfo(file)
        {
            WorkingDirectory = RepoPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            info.Environment[name] = value;
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null && stderr) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', info.ArgumentList)} did not end within {(timeout ?? TimeSpan.FromMinutes(2)).TotalSeconds:0} s:\n{output}");
        }
        process.WaitForExit(); // the output events have all been raised
        lock (output)
            return new CommandResult(process.ExitCode, output.ToString());
    }
}
