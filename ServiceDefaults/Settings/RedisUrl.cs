using System.Globalization;
using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// Parses redis://[user:password@]host[:port][/db] and rediss:// (TLS) into client options. Several hosts, comma
/// separated (redis://host1:7000,host2:7001,host3:7002), are seed nodes: the client connects to whichever answers and,
/// on a Redis Cluster, learns the rest of the cluster from it.
/// </summary>
public static class RedisUrl
{
    const string Expected = "expected redis://host:port/db, rediss://host:port/db, or redis://host1:port1,host2:port2 for a Redis Cluster";

    public static bool TryParse(string url, out ConfigurationOptions options, out string error)
    {
        options = new ConfigurationOptions();
        error = "";
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var scheme = schemeEnd < 0 ? "" : url[..schemeEnd];
        if (scheme is not ("redis" or "rediss"))
        {
            error = Expected;
            return false;
        }
        var rest = url[(schemeEnd + 3)..];
        var pathStart = rest.IndexOf('/');
        var authority = pathStart < 0 ? rest : rest[..pathStart];
        var path = pathStart < 0 ? "" : rest[(pathStart + 1)..].TrimEnd('/');

        var at = authority.LastIndexOf('@');
        var userInfo = at < 0 ? "" : authority[..at];
        var hosts = (at < 0 ? authority : authority[(at + 1)..]).Split(',');
        foreach (var host in hosts)
        {
            // Each host alone is an ordinary URL authority: names, IPv4, [IPv6], with or without a port.
            if (host.Length == 0 || !Uri.TryCreate($"redis://{host}", UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host)
                || uri.UserInfo.Length > 0)
            {
                error = host.Length == 0 ? Expected : $"'{host}' is not a host[:port]";
                return false;
            }
            options.EndPoints.Add(uri.Host, uri.IsDefaultPort || uri.Port <= 0 ? 6379 : uri.Port);
        }
        options.Ssl = scheme == "rediss";
        if (userInfo.Length > 0)
        {
            var parts = userInfo.Split(':', 2);
            if (parts.Length == 2)
            {
                if (parts[0].Length > 0) options.User = Uri.UnescapeDataString(parts[0]);
                options.Password = Uri.UnescapeDataString(parts[1]);
            }
            else
            {
                options.Password = Uri.UnescapeDataString(parts[0]);
            }
        }

        if (path.Length > 0)
        {
            if (!int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out var db))
            {
                error = $"'{path}' is not a database number";
                return false;
            }
            options.DefaultDatabase = db;
        }

        // A gateway must start even while Redis restarts; health reports the outage.
        options.AbortOnConnectFail = false;
        options.ClientName = AppDomain.CurrentDomain.FriendlyName;
        return true;
    }
}
