using Microsoft.Extensions.DependencyInjection.Extensions;
using LlmStream.Messaging;
using LlmStream.Messaging.Bus;
using LlmStream.Messaging.RedisStreams;
using LlmStream.Messaging.Workers;
using LlmStream.ServiceDefaults.Hosting;
using LlmStream.ServiceDefaults.Settings;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

public static class MessagingExtensions
{
    /// <summary>
    /// The one place the deployment's broker is put to work: the bus, the consumers this process runs on their priority
    /// queues, the dispatcher that gateways send work with, the waiting ledger, and (for a process that runs workers) its
    /// heartbeat and clean stop. Heartbeats and the ledger live in Redis when the deployment uses it.
    /// </summary>
    public static IHostApplicationBuilder AddMessaging(this IHostApplicationBuilder builder, Deployment deployment, Action<WorkConsumers>? consumers = null)
    {
        var work = new WorkConsumers();
        consumers?.Invoke(work);
        var kind = deployment.Broker;

        builder.AddValidatedSettings<QueueOptions>();
        builder.Services.TryAddSingleton<WorkerActivity>();
        if (deployment.UsesRedis)
        {
            builder.Services.AddSingleton<IWorkerRegistry, RedisWorkerRegistry>();
            builder.Services.AddSingleton<IWaitingLedger, RedisWaitingLedger>();
        }
        else
        {
            builder.Services.AddSingleton<IWorkerRegistry, InProcessWorkerRegistry>();
            builder.Services.AddSingleton<IWaitingLedger, InProcessWaitingLedger>();
        }

        // MassTransit reports usage to its makers five minutes after the bus starts unless told not to: nothing leaves
        // the machine unasked. MASSTRANSIT_USAGE_TELEMETRY=true (MassTransit's own variable) opts in; its options can
        // also be set under MassTransit:UsageTelemetry (MassTransit__UsageTelemetry__ReportDelay=00:00:05).
        builder.Services.AddOptions<UsageTelemetryOptions>()
            .Configure(telemetry => telemetry.Enabled = false)
            .BindConfiguration("MassTransit:UsageTelemetry");

        var fairness = Math.Max(2, builder.Configuration.Settings<QueueOptions>().PriorityFairness); // out-of-range values are reported by settings validation

        if (kind == BrokerKind.Redis)
        {
            // MassTransit has no Redis transport: the same consumers run through its Mediator, fed by Redis Streams.
            builder.Services.AddSingleton<RedisWorkQueue>();
            builder.Services.AddSingleton<IWorkDispatcher, RedisWorkDispatcher>();
            builder.Services.AddMediator(mediator =>
            {
                foreach (var registration in work.Registrations)
                    registration.Register(mediator);
            });
            foreach (var registration in work.Registrations)
            {
                builder.Services.AddSingleton<IHostedService>(sp => ActivatorUtilities.CreateInstance<RedisQueueWorker>(sp, registration));
            }
            AddHeartbeat(builder, work, kind);
            return builder;
        }

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
                    var rabbitMq = deployment.RabbitMq!;
                    cfg.Host(rabbitMq.First, host =>
                    {
                        host.ConnectionName(builder.Environment.ApplicationName);
                        // Every node of a cluster: the connection goes to the first that answers, and to the next when it is lost.
                        if (rabbitMq.IsCluster)
                            host.UseCluster(cluster => { foreach (var node in rabbitMq.Nodes) cluster.Node($"{node.Host}:{(node.IsDefaultPort ? 5672 : node.Port)}"); });
                    });
                    MapWorkQueues(work, fairness, context, cfg, deployment.QuorumQueues);
                });
            }
            else
            {
                bus.UsingInMemory((context, cfg) => MapWorkQueues(work, fairness, context, cfg, quorum: false));
            }
        });
        // The stop's bound: running consumers get SHUTDOWN_TIMEOUT, then their consume is cancelled (the message goes
        // back to the queue), and the bus a few seconds more to close.
        var stop = builder.Configuration.Settings<StopOptions>().Clamped();
        builder.Services.Configure<MassTransitHostOptions>(host =>
        {
            host.ConsumerStopTimeout = stop.ShutdownTimeout;
            host.StopTimeout = stop.ShutdownTimeout + TimeSpan.FromSeconds(5);
        });
        AddHeartbeat(builder, work, kind);
        return builder;
    }

    /// <summary>Registered after the consumers, so that the first heartbeat already reports their slots.</summary>
    static void AddHeartbeat(IHostApplicationBuilder builder, WorkConsumers work, BrokerKind kind)
    {
        if (work.IsEmpty)
            return;
        builder.Services.AddHostedService<WorkerHeartbeat>();
        // In-memory messages live in this process alone: what has not ended is gone with it.
        var afterBound = kind == BrokerKind.InMemory
            ? "then they are cut, and they and the work still queued in this process (BROKER=inmemory keeps no queue outside it) are dropped"
            : "then they are cut and their messages, like those not started, go back to the broker for another worker";
        builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<WorkIntakeStop>(sp, afterBound));
    }

    static void MapWorkQueues(WorkConsumers work, int fairness, IBusRegistrationContext context, IBusFactoryConfigurator cfg, bool quorum)
    {
        foreach (var registration in work.Registrations)
        {
            // One set of slots per kind of work: the three queues share the process's concurrency, high first.
            var slots = new PrioritySlots(Math.Max(1, registration.Concurrency), fairness);
            context.GetRequiredService<WorkerActivity>().Track(registration.Queues, slots);
            var waiting = context.GetRequiredService<IWaitingLedger>();
            var queues = registration.Queues.All;
            for (var level = 0; level < queues.Count; level++)
            {
                var priorityLevel = level;
                cfg.ReceiveEndpoint(queues[level], endpoint =>
                {
                    // Commands arrive only by send to this queue, never by a publish fanned out to all three.
                    endpoint.ConfigureConsumeTopology = false;
                    // More than the slots, so each queue's next messages already wait at the gate when a slot frees
                    // up (a prefetch refill takes a round trip); otherwise queues would take turns instead of high first.
                    var slotsPerProcess = Math.Max(1, registration.Concurrency);
                    var inPipeline = slotsPerProcess + Math.Max(2, slotsPerProcess / 2);
                    endpoint.ConcurrentMessageLimit = inPipeline;
                    if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbit)
                    {
                        // A quorum queue is replicated but keeps no priorities on RabbitMQ 3.x: the order between the
                        // three queues stays (the slots), the order inside one queue is arrival. Its error queue is a
                        // quorum queue too (MassTransit copies the arguments).
                        if (quorum)
                            rabbit.SetQuorumQueue();
                        else
                            rabbit.EnablePriority(WorkQueues.MaxQueuePriority);
                        rabbit.PrefetchCount = inPipeline;
                    }
                    endpoint.UseFilter(new PrioritySlotFilter(slots, priorityLevel, queues[priorityLevel], waiting));
                    registration.Configure(context, endpoint);
                });
            }
        }
    }
}
