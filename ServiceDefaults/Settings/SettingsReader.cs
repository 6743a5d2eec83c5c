using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace LlmStream.ServiceDefaults.Settings;

public static partial class SettingsReader
{
    /// <summary>
    /// Settings read while the services are wired, before validation runs: a value that cannot be converted
    /// (LLM_TIMEOUT=abc) falls back to the defaults here, and validation at start reports it in one line.
    /// </summary>
    public static T Settings<T>(this IConfiguration configuration) where T : new()
    {
        try
        {
            return configuration.Get<T>() ?? new T();
        }
        catch (InvalidOperationException)
        {
            return new T();
        }
    }

    /// <summary>The configuration binder's conversion failure, said as a setting error ("LLM_TIMEOUT must be a whole number, not 'abc'").</summary>
    public static string? DescribeConversionFailure(InvalidOperationException e)
    {
        var match = ConversionFailure().Match(e.Message);
        if (!match.Success)
            return null;
        var expected = match.Groups["type"].Value switch
        {
            "System.Int32" or "System.Int64" => "a whole number",
            "System.Double" or "System.Single" or "System.Decimal" => "a number",
            "System.Boolean" => "true or false",
            var type => "a " + type.Split('.')[^1],
        };
        return $"{match.Groups["key"].Value} must be {expected}, not '{match.Groups["value"].Value}'";
    }

    [GeneratedRegex("^Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'")]
    private static partial Regex ConversionFailure();
}
