namespace LlmStream.Tests.Infrastructure;

/// <summary>Where the built services are: the same configuration as this test assembly.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    static string Configuration =>
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";

    public static string Gateway => ServiceDll("Gateway", "LlmStream.Gateway");
    public static string ChatWorker => ServiceDll("ChatWorker", "LlmStream.ChatWorker");
    public static string EmbeddingWorker => ServiceDll("EmbeddingWorker", "LlmStream.EmbeddingWorker");

    static string ServiceDll(string folder, string assembly)
    {
        var path = Path.Combine(Root, folder, "bin", Configuration, "net10.0", assembly + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{assembly} is not built at {path}; build the solution first");
    }

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LlmStream.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("LlmStream.sln not found above " + AppContext.BaseDirectory);
    }
}
