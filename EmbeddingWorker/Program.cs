using LlmStream.EmbeddingWorker;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(ServiceDefaultsExtensions.HostArgs(args));
var deployment = builder.AddServiceDefaults();
builder.AddEmbeddingWorker(deployment);
builder.AddMessaging(deployment, consumers => consumers.AddEmbeddingConsumer(builder.Configuration));
builder.AddEmbeddingWorkerProcessChecks();

var host = builder.Build();
return host.HasValidSettings() ? host.RunService() : 1;
