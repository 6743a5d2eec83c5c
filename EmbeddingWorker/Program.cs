using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Hosting;

// Skeleton: the service boots with the shared defaults and bus; its EmbedBatchRequested consumer is not built yet.
ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(args);
builder.AddServiceDefaults();
builder.AddLlmStreamBus();

var host = builder.Build();
return host.HasValidSettings() ? host.RunService() : 1;
