namespace LlmStream.ServiceDefaults.Settings;

/// <summary>Settings are echoed in errors and logs; passwords in URLs never are.</summary>
public static class SettingText
{
    public static string Redact(string? url)
    {
        if (string.IsNullOrEmpty(url) || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.UserInfo))
            return url ?? "";
        var user = uri.UserInfo.Split(':')[0];
        return new UriBuilder(uri) { UserName = user, Password = "***" }.Uri.ToString();
    }
}
