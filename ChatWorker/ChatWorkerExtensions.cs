using LlmStream.Contracts;
using LlmStream.ServiceDefaults.Bus;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.ServiceDefaults.Tasks;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

public static class ChatWorkerExtensions
{
    /// <summary>The chat consumer on the high, default and low queues, CHAT_CONCURRENCY messages in flight in all.</summary>
    public static WorkConsumers AddChatWorker(this WorkConsumers consumers, IConfiguration configuration)
    {
        var options = configuration.Settings<WorkerOptions>();
        return consumers.Add<ChatRequested, ChatRequestedConsumer, ChatRequestedConsumerDefinition>(WorkQueues.Chat, options.ChatConcurrency,
            deadLettered: (services, message, reason) => services.GetRequiredService<ITaskStore>().FailAsync(message.TaskId, message.SessionId, reason));
    }

    /// <summary>A separate worker process needs a broker shared with the gateway.</summary>
    public static IHostApplicationBuilder AddWorkerChecks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<BrokerOptions>>(new SeparateWorkerBrokerValidator("chat worker", "ChatWorker"));
        builder.Services.AddHostedService<WorkerStartupReport>();
        return builder;
    }
}
