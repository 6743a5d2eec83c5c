using LlmStream.ServiceDefaults.Settings;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LlmStream.ServiceDefaults.Bus;

public static class BusExtensions
{
    /// <summary>
    /// The one place the broker is chosen (BROKER). Registers the bus, the consumers this process runs
    /// on their priority queues, and the dispatcher that gateways send work with.
    /// </summary>
    public static IHostApplicationBuilder AddLlmStreamBus(this IHostApplicationBuilder builder, Action<WorkConsumers>? consumers = null)
    {
        var work = new WorkConsumers();
        consumers?.Invoke(work);

        var broker = builder.Configuration.Get<BrokerOptions>() ?? new BrokerOptions();
        var kind = SafeKind(broker);

        builder.Services.AddSingleton<RabbitMqWorkTopology>();
        builder.Services.AddSingleton<IWorkDispatcher, MassTransitWorkDispatcher>();
        builder.Services.AddMassTransit(bus =>
        {
            foreach (var registration in work.Registrations)
                registration.Register(bus);

            if (kind == BrokerKind.RabbitMq)
            {
                bus.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(new Uri(broker.RabbitMqUrl!), host => host.ConnectionName(builder.Environment.ApplicationName));
                    MapWorkQueues(work, context, cfg);
                });
            }
            else
            {
                bus.UsingInMemory((context, cfg) => MapWorkQueues(work, context, cfg));
            }
        });
        return builder;
    }

    static void MapWorkQueues(WorkConsumers work, IBusRegistrationContext context, IBusFactoryConfigurator cfg)
    {
        foreach (var registration in work.Registrations)
        {
            foreach (var queue in registration.Queues.All)
            {
                cfg.ReceiveEndpoint(queue, endpoint =>
                {
                    // Commands arrive only by send to this queue, never by a publish fanned out to all three.
                    endpoint.ConfigureConsumeTopology = false;
                    endpoint.ConcurrentMessageLimit = registration.Concurrency;
                    if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbit)
                    {
                        rabbit.EnablePriority(WorkQueues.MaxQueuePriority);
                        rabbit.PrefetchCount = registration.Concurrency;
                    }
                    registration.Configure(context, endpoint);
                });
            }
        }
    }

    // An invalid BROKER is reported by options validation at start with the setting named;
    // registration must not throw a less helpful error first.
    static BrokerKind SafeKind(BrokerOptions options)
    {
        try { return options.Kind; }
        catch (InvalidOperationException) { return BrokerKind.InMemory; }
    }
}
