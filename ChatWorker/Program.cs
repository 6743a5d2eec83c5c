using LlmStream.ChatWorker;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = Host.CreateApplicationBuilder(ServiceDefaultsExtensions.HostArgs(args));
var deployment = builder.AddServiceDefaults();
builder.AddChatWorker(deployment);
builder.AddMessaging(deployment, consumers => consumers.AddChatConsumer(builder.Configuration));
builder.AddWorkerProcessChecks();

var host = builder.Build();
return host.HasValidSettings() ? host.RunService() : 1;
