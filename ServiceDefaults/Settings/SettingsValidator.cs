using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// Data-annotation validation that reports only each attribute's own message, which names the
/// environment variable ("PORT must be between 1 and 65535"), without the framework's wrapping.
/// </summary>
public sealed class SettingsValidator<T> : IValidateOptions<T> where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var results = new List<ValidationResult>();
        return Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(results.Select(r => r.ErrorMessage ?? "invalid setting"));
    }
}
