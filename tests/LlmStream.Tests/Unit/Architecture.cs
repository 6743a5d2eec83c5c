using System.Text.RegularExpressions;
using System.Xml.Linq;
using LlmStream.Tests.Infrastructure;

namespace LlmStream.Tests.Unit;

/// <summary>
/// The house's direction, checked on the source so it cannot drift back: project references run from the services to
/// the domain projects to ServiceDefaults to Contracts, and no LlmStream namespace depends on itself around a loop.
/// </summary>
public sealed partial class Architecture
{
    static readonly string[] Services = ["Gateway", "ChatWorker", "EmbeddingWorker"];

    /// <summary>What each project may reference. Domain projects reference each other only downwards (Providers → Sessions).</summary>
    static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Contracts"] = [],
        ["ServiceDefaults"] = ["Contracts"],
        ["Sessions"] = ["ServiceDefaults", "Contracts"],
        ["Messaging"] = ["ServiceDefaults", "Contracts"],
        ["Providers"] = ["Sessions", "ServiceDefaults", "Contracts"],
        ["ChatWorker"] = ["Providers", "Sessions", "Messaging", "ServiceDefaults", "Contracts"],
        ["EmbeddingWorker"] = ["Providers", "Sessions", "Messaging", "ServiceDefaults", "Contracts"],
        // The single-process default runs both workers inside the gateway.
        ["Gateway"] = ["ChatWorker", "EmbeddingWorker", "Providers", "Sessions", "Messaging", "ServiceDefaults", "Contracts"],
    };

    static IEnumerable<string> ProductionFiles() =>
        Allowed.Keys.SelectMany(project => Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, project), "*.cs", SearchOption.AllDirectories))
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                           && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [Test]
    public void Project_references_run_from_the_services_to_the_domain_to_ServiceDefaults()
    {
        var wrong = new List<string>();
        foreach (var (project, allowed) in Allowed)
        {
            var csproj = XDocument.Load(Path.Combine(RepoPaths.Root, project, $"LlmStream.{project}.csproj"));
            foreach (var reference in csproj.Descendants("ProjectReference").Select(r => (string)r.Attribute("Include")!))
            {
                var target = reference.Replace('\\', '/').Split('/')[^2];
                if (!allowed.Contains(target))
                    wrong.Add($"{project} → {target}");
            }
        }
        Assert.That(wrong, Is.Empty, "references against the direction");
        Assert.That(Allowed.Keys.Except(Services).Where(p => Allowed[p].Any(Services.Contains)), Is.Empty, "nothing below a service references one");
    }

    [Test]
    public void The_images_are_built_from_every_project()
    {
        // The images cannot be built on this machine (no image registry), so a project left out would show first in a user's `make up`.
        var dockerfile = File.ReadAllText(Path.Combine(RepoPaths.Root, "deploy", "Dockerfile"));
        var missing = Allowed.Keys.SelectMany(project => new[]
            {
                $"COPY {project}/LlmStream.{project}.csproj {project}/", // restored before the sources, so the layer is reused
                $"COPY {project}/ {project}/",
            })
            .Where(line => !dockerfile.Contains(line, StringComparison.Ordinal));
        Assert.That(missing, Is.Empty, "lines deploy/Dockerfile lacks");
    }

    [Test]
    public void No_namespace_depends_on_itself_around_a_loop()
    {
        // Which LlmStream namespaces each file's namespace uses: its usings and any fully written name.
        var edges = new Dictionary<string, HashSet<string>>();
        var declared = new HashSet<string>();
        var sources = ProductionFiles().Select(file => (File: file, Text: File.ReadAllText(file))).ToList();
        var types = new Dictionary<string, HashSet<string>>(); // namespace → the types declared in it
        foreach (var (_, text) in sources)
        {
            if (Namespace().Match(text) is not { Success: true } ns)
                continue;
            declared.Add(ns.Groups[1].Value);
            foreach (Match type in TypeDeclaration().Matches(text))
                (types.TryGetValue(ns.Groups[1].Value, out var set) ? set : types[ns.Groups[1].Value] = []).Add(type.Groups[1].Value);
        }
        foreach (var (file, text) in sources)
        {
            if (Namespace().Match(text) is not { Success: true } own || !own.Groups[1].Value.StartsWith("LlmStream", StringComparison.Ordinal))
                continue;
            var from = own.Groups[1].Value;
            var code = StringLiteral().Replace(Comment().Replace(text, ""), "\"\"");
            // An enclosing namespace is in scope without a using: a type of it named here is a dependency too.
            foreach (var enclosing in declared.Where(ns => from.StartsWith(ns + ".", StringComparison.Ordinal)))
            {
                if (types.GetValueOrDefault(enclosing)?.Any(type => Regex.IsMatch(code, $@"\b{type}\b")) == true)
                    (edges.TryGetValue(from, out var set) ? set : edges[from] = []).Add(enclosing);
            }
            foreach (Match used in Mentioned().Matches(code))
            {
                // The longest declared namespace the name starts with: LlmStream.Sessions.Tasks.ITaskStore → LlmStream.Sessions.Tasks.
                var name = used.Groups[1].Value;
                var target = declared.Where(ns => name == ns || name.StartsWith(ns + ".", StringComparison.Ordinal)).MaxBy(ns => ns.Length);
                if (target is not null && target != from)
                    (edges.TryGetValue(from, out var set) ? set : edges[from] = []).Add(target);
            }
        }

        var loops = Loops(edges).Select(loop => string.Join(" → ", loop)).ToList();
        Assert.That(loops, Is.Empty, "namespaces that depend on each other");
        Assert.That(edges, Is.Not.Empty, "the scan found the dependencies");
    }

    /// <summary>Every strongly connected group of more than one namespace (Tarjan), as a readable loop.</summary>
    static List<List<string>> Loops(Dictionary<string, HashSet<string>> edges)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var groups = new List<List<string>>();
        void Visit(string node)
        {
            index[node] = low[node] = index.Count;
            stack.Push(node);
            onStack.Add(node);
            foreach (var next in edges.GetValueOrDefault(node) ?? [])
            {
                if (!index.ContainsKey(next))
                {
                    Visit(next);
                    low[node] = Math.Min(low[node], low[next]);
                }
                else if (onStack.Contains(next))
                    low[node] = Math.Min(low[node], index[next]);
            }
            if (low[node] != index[node])
                return;
            var group = new List<string>();
            string member;
            do
            {
                member = stack.Pop();
                onStack.Remove(member);
                group.Add(member);
            }
            while (member != node);
            if (group.Count > 1)
                groups.Add(group);
        }
        foreach (var node in edges.Keys.ToList())
        {
            if (!index.ContainsKey(node))
                Visit(node);
        }
        return groups;
    }

    [GeneratedRegex(@"^namespace ([\w.]+);", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    [GeneratedRegex(@"^(?:public |internal |static |sealed |abstract |partial |readonly )*(?:class|record struct|record|interface|enum|struct) ([A-Z]\w*)", RegexOptions.Multiline)]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"//.*$", RegexOptions.Multiline)]
    private static partial Regex Comment();

    // Names in strings are not dependencies ("LlmStream.Gateway" names a service).
    [GeneratedRegex(@"""(?:[^""\\\n]|\\.)*""")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\b(LlmStream(?:\.[A-Z]\w*)+)")]
    private static partial Regex Mentioned();
}
