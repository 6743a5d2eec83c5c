using LlmStream.Gateway;
using LlmStream.ServiceDefaults.Hosting;

ServiceDefaultsExtensions.CreateBootstrapLogger();

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot"),
});
builder.AddServiceDefaults();
builder.AddGateway();

var app = builder.Build();
app.UseGateway();
app.MapDefaultEndpoints();
app.MapChatApi();
app.MapStreamApi();
app.MapGatewayDocs();

return app.RunService();
