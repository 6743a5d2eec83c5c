using System.ComponentModel.DataAnnotations;

namespace LlmStream.Gateway;

public sealed class GatewayOptions
{
    [ConfigurationKeyName("PORT"), Range(1, 65535, ErrorMessage = "PORT must be between {1} and {2}")]
    public int Port { get; set; } = 8007;

    /// <summary>Address to listen on; 0.0.0.0 for containers, 127.0.0.1 to stay local.</summary>
    [ConfigurationKeyName("HOST"), Required(ErrorMessage = "HOST must not be empty")]
    public string Host { get; set; } = "0.0.0.0";

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    [ConfigurationKeyName("MAX_REQUEST_BYTES"), Range(1024, 64 * 1024 * 1024, ErrorMessage = "MAX_REQUEST_BYTES must be between {1} and {2}")]
    public int MaxRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Seconds between SSE keep-alive comments on an idle stream.</summary>
    [ConfigurationKeyName("SSE_KEEPALIVE_SECONDS"), Range(1, 300, ErrorMessage = "SSE_KEEPALIVE_SECONDS must be between {1} and {2}")]
    public int KeepAliveSeconds { get; set; } = 15;

    public TimeSpan KeepAlive => TimeSpan.FromSeconds(KeepAliveSeconds);
}
