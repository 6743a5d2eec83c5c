using System.Globalization;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>Settings that are comma-separated <c>name=number</c> lists (LLM_MODEL_CONTEXT_TOKENS).</summary>
public static class SettingLists
{
    public static bool TryParseNumbers(string? text, out Dictionary<string, int> values, out string error)
    {
        values = new Dictionary<string, int>(StringComparer.Ordinal);
        error = "";
        if (string.IsNullOrWhiteSpace(text))
            return true;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.LastIndexOf('=');
            if (eq <= 0 || !int.TryParse(part[(eq + 1)..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                error = $"'{part}' is not model=number (e.g. llama3=8192)";
                return false;
            }
            values[part[..eq].Trim()] = value;
        }
        return true;
    }
}
