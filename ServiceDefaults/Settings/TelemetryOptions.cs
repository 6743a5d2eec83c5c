using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;

namespace LlmStream.ServiceDefaults.Settings;

/// <summary>
/// The OTLP settings LlmStream checks at start: the exporter itself would only report a bad endpoint to its own
/// event source, and the spans and metrics would vanish without a word. The exporter reads them itself.
/// </summary>
public sealed class TelemetryOptions : IValidatableObject
{
    [ConfigurationKeyName("OTEL_EXPORTER_OTLP_ENDPOINT")]
    public string? OtlpEndpoint { get; set; }

    [ConfigurationKeyName("OTEL_EXPORTER_OTLP_PROTOCOL")]
    public string? OtlpProtocol { get; set; }

    public bool ExportsOtlp => !string.IsNullOrWhiteSpace(OtlpEndpoint);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (ExportsOtlp && !(Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
            yield return new ValidationResult($"OTEL_EXPORTER_OTLP_ENDPOINT='{OtlpEndpoint}' must be an http:// or https:// URL, e.g. http://collector:4317");
        if (!string.IsNullOrWhiteSpace(OtlpProtocol) && OtlpProtocol is not ("grpc" or "http/protobuf"))
            yield return new ValidationResult($"OTEL_EXPORTER_OTLP_PROTOCOL='{OtlpProtocol}' is not one of grpc, http/protobuf");
    }
}
