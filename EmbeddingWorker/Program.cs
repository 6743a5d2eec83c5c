using LlmStream.EmbeddingWorker;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(args);
builder.AddServiceDefaults();
builder.AddLlmStreamBus(consumers => consumers.AddEmbeddingWorker(builder.Configuration));
builder.AddEmbeddingWorkerChecks();

var host = builder.Build();
return host.HasValidSettings() ? host.RunService() : 1;
