using LlmStream.Contracts;
using LlmStream.Messaging;
using LlmStream.Messaging.Workers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using LlmStream.Sessions.Tasks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmStream.ChatWorker;

public static class ChatWorkerExtensions
{
    /// <summary>
    /// What a chat generation needs, in one call (a worker process, the single-process gateway, a consumer spec): the
    /// sessions it writes, the provider it calls under the rate limits, and the batching of its tokens.
    /// </summary>
    public static IHostApplicationBuilder AddChatWorker(this IHostApplicationBuilder builder, Deployment deployment)
    {
        builder.AddSessions(deployment);
        builder.AddProviders(deployment);
        builder.AddValidatedSettings<ChatWorkerOptions>();
        builder.Services.TryAddSingleton<WorkerActivity>();
        builder.Services.AddSingleton<TokenBatcher>();
        builder.Services.AddSingleton<ConversationMemory>();
        return builder;
    }

    /// <summary>The chat consumer on the high, default and low queues, CHAT_CONCURRENCY messages in flight in all.</summary>
    public static WorkConsumers AddChatConsumer(this WorkConsumers consumers, IConfiguration configuration) =>
        consumers.Add<ChatRequested, ChatRequestedConsumer, ChatRequestedConsumerDefinition>(WorkQueues.Chat, configuration.Settings<ChatWorkerOptions>().Concurrency,
            deadLettered: (services, message, reason) => services.GetRequiredService<ITaskStore>().FailAsync(message.TaskId, message.SessionId, reason));

    /// <summary>A separate worker process needs a broker shared with the gateway; it says at start what it runs against.</summary>
    public static IHostApplicationBuilder AddWorkerProcessChecks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<BrokerOptions>>(new SeparateWorkerBrokerValidator("chat worker", "ChatWorker"));
        builder.Services.AddHostedService<WorkerStartupReport>();
        return builder;
    }
}
