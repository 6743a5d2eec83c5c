using LlmStream.Gateway;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmStream.Tests.Gateway;

/// <summary>The gateway in its single-process default (in-memory bus, in-process store), on a test server.</summary>
public sealed class GatewayFactory(IReadOnlyDictionary<string, string> settings) : WebApplicationFactory<GatewayOptions>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("BROKER", "inmemory");
        foreach (var (key, value) in settings)
            builder.UseSetting(key, value);
    }
}
