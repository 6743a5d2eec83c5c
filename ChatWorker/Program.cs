using LlmStream.ChatWorker;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(args);
builder.AddServiceDefaults();
builder.AddLlmStreamBus(consumers => consumers.AddChatWorker(builder.Configuration));
builder.AddWorkerChecks();

var host = builder.Build();
return host.HasValidSettings() ? host.RunService() : 1;
