using LlmStream.Gateway.Chat;
using LlmStream.Gateway.Embeddings;
using LlmStream.Gateway.OpenAi;
using LlmStream.Gateway.Operations;
using LlmStream.Gateway.Streaming;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = WebApplication.CreateBuilder(ServiceDefaultsExtensions.HostArgs(args));
var deployment = builder.AddServiceDefaults();
builder.AddGateway(deployment);

var app = builder.Build();
if (!app.HasValidSettings() || !app.CanListen())
    return 1;

app.UseGateway();
app.MapDefaultEndpoints();
app.MapMetrics();
app.MapChatApi();
app.MapEmbeddingsApi();
app.MapStreamApi();
app.MapStatsApi();
app.MapOpenAiApi();
app.MapGatewayDocs();

return app.RunService();
