using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>Parses redis://[user:password@]host[:port][/db] and rediss:// (TLS) into client options.</summary>
public static class RedisUrl
{
    public static bool TryParse(string url, out ConfigurationOptions options, out string error)
    {
        options = new ConfigurationOptions();
        error = "";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("redis" or "rediss") || string.IsNullOrEmpty(uri.Host))
        {
            error = "expected redis://host:port/db or rediss://host:port/db";
            return false;
        }

        var port = uri.IsDefaultPort || uri.Port <= 0 ? 6379 : uri.Port;
        options.EndPoints.Add(uri.Host, port);
        options.Ssl = uri.Scheme == "rediss";
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var parts = uri.UserInfo.Split(':', 2);
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

        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, out var db) || db < 0)
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
