using LlmStream.ChatWorker;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(args);
builder.AddServiceDefaults();
builder.AddLlmStreamBus(consumers => consumers.AddChatWorker(builder.Configuration));
builder.AddWorkerChecks();

return builder.Build().RunService();
