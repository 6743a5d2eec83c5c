namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// The RabbitMQ node or nodes to connect to: every node of a cluster with the same credentials and virtual host. The
/// client tries them in order and moves to the next when one is lost.
/// </summary>
public sealed record RabbitMqAddress(IReadOnlyList<Uri> Nodes)
{
    /// <summary>The first node's URL: credentials, virtual host and TLS for all of them.</summary>
    public Uri First => Nodes[0];

    public bool IsCluster => Nodes.Count > 1;
}

/// <summary>
/// Parses amqp://user:pass@host[:port]/vhost (amqps:// for TLS); several hosts, comma separated
/// (amqp://user:pass@host1:5672,host2:5672,host3:5672/vhost), name the nodes of a cluster.
/// </summary>
public static class RabbitMqUrl
{
    public static bool TryParse(string url, out RabbitMqAddress address, out string error)
    {
        address = new RabbitMqAddress([]);
        error = "expected amqp://user:pass@host:5672/vhost, amqps://…, or amqp://user:pass@host1:5672,host2:5672/vhost for a cluster";
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var scheme = schemeEnd < 0 ? "" : url[..schemeEnd];
        if (scheme is not ("amqp" or "amqps"))
            return false;
        var rest = url[(schemeEnd + 3)..];
        var pathStart = rest.IndexOf('/');
        var authority = pathStart < 0 ? rest : rest[..pathStart];
        var path = pathStart < 0 ? "" : rest[pathStart..];
        var at = authority.LastIndexOf('@');
        var userInfo = at < 0 ? "" : authority[..(at + 1)];
        var nodes = new List<Uri>();
        foreach (var host in (at < 0 ? authority : authority[(at + 1)..]).Split(','))
        {
            if (host.Length == 0 || !Uri.TryCreate($"{scheme}://{userInfo}{host}{path}", UriKind.Absolute, out var node) || string.IsNullOrEmpty(node.Host))
            {
                if (host.Length > 0)
                    error = $"'{host}' is not a host[:port]";
                return false;
            }
            nodes.Add(node);
        }
        address = new RabbitMqAddress(nodes);
        return true;
    }
}
