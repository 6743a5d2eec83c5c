namespace LlmStream.ServiceDefaults.Settings;

/// <summary>Settings are echoed in errors and logs; passwords in URLs never are.</summary>
public static class SettingText
{
    /// <summary>
    /// The URL with its password replaced by ***: scheme://user:***@host..., and scheme://***@host... when the user part
    /// alone is the password (redis://secret@host). Works on what System.Uri refuses too, such as a list of cluster nodes.
    /// </summary>
    public static string Redact(string? url)
    {
        if (string.IsNullOrEmpty(url))
            return "";
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd < 0)
            return url;
        var authorityStart = schemeEnd + 3;
        var pathStart = url.IndexOf('/', authorityStart);
        var authorityEnd = pathStart < 0 ? url.Length : pathStart;
        var at = url.LastIndexOf('@', authorityEnd - 1, authorityEnd - authorityStart);
        if (at < 0)
            return url;
        var colon = url.IndexOf(':', authorityStart, at - authorityStart);
        var kept = colon < 0 ? "" : url[authorityStart..(colon + 1)];
        return url[..authorityStart] + kept + "***" + url[at..];
    }
}
