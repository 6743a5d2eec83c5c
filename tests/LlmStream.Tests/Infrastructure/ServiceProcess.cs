using System.Collections.Concurrent;
using System.Diagnostics;

namespace LlmStream.Tests.Infrastructure;

/// <summary>
/// A real process the test owns: started with an explicit environment, its output kept for failure
/// messages, stopped by its own PID (never by name).
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    readonly Process _process;
    readonly ConcurrentQueue<string> _output = new();

    ServiceProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Output => string.Join('\n', _output);

    /// <summary>Runs <c>dotnet dll</c> with only the given LlmStream settings (none inherited from the test's environment).</summary>
    public static ServiceProcess StartDotnet(string name, string dll, IReadOnlyDictionary<string, string> settings) =>
        Start(name, "dotnet", [dll], settings);

    public static ServiceProcess Start(string name, string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> settings)
    {
        var info = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = RepoPaths.Root,
        };
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        foreach (var key in Settings.All.Concat(LlmStream.ServiceDefaults.Settings.OriginalSettings.Names))
            info.Environment.Remove(key);
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in settings)
            info.Environment[key] = value;

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var service = new ServiceProcess(name, process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) service._output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) service._output.Enqueue(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_output.Any(line => line.Contains(text, StringComparison.Ordinal)))
                return;
            if (_process.HasExited)
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} before printing '{text}':\n{Output}");
            await Task.Delay(50);
        }
        throw new TimeoutException($"{Name} did not print '{text}' within {timeout.TotalSeconds:0} s:\n{Output}");
    }

    public async Task WaitForHttpAsync(Uri url, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode}:\n{Output}");
            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name} did not answer {url} within {timeout.TotalSeconds:0} s:\n{Output}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>kill -9: the process gets no chance to clean up.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
    }

    /// <summary>
    /// SIGTERM, then waits for the process to leave by itself, at most <paramref name="within"/>; returns its exit code and
    /// how long it took. Fails (and kills it) if it does not leave in time.
    /// </summary>
    public async Task<(int ExitCode, TimeSpan Took)> TerminateAsync(TimeSpan within)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await term.WaitForExitAsync();
        try
        {
            using var cts = new CancellationTokenSource(within);
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            Assert.Fail($"{Name} was still running {within.TotalSeconds:0} s after SIGTERM and needed SIGKILL:\n{Output}");
        }
        return (_process.ExitCode, clock.Elapsed);
    }

    /// <summary>Stack-trace lines the process printed (lines starting with "   at "): a clean run has none.</summary>
    public IReadOnlyList<string> StackTraceLines => [.. _output.Where(line => line.StartsWith("   at ", StringComparison.Ordinal))];

    /// <summary>SIGTERM, then SIGKILL if it has not left in time.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        if (_process.HasExited)
            return;
        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await term.WaitForExitAsync();
        try
        {
            using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
    }

    /// <summary>
    /// Settings a test process must never inherit from whoever runs the tests (the Python original's names too: they are
    /// read as these).
    /// </summary>
    static class Settings
    {
        public static readonly string[] All =
        [
            "BROKER", "RABBITMQ_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT", "LLM_MODEL", "EMBEDDING_MODEL", "PORT", "HOST",
            "CHAT_CONCURRENCY", "EMBEDDING_CONCURRENCY", "LLM_RPM", "LLM_TPM", "LLM_TIMEOUT", "ASPNETCORE_URLS",
            "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
        ];
    }
}
