using LlmStream.Gateway;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddGateway();

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
