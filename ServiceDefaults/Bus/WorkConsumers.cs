using MassTransit;

namespace LlmStream.ServiceDefaults.Bus;

/// <summary>
/// The consumers a process runs, each attached to the three queues of its kind of work.
/// The same consumer classes run on every broker.
/// </summary>
public sealed class WorkConsumers
{
    readonly List<Registration> _registrations = [];

    internal IReadOnlyList<Registration> Registrations => _registrations;

    public bool IsEmpty => _registrations.Count == 0;

    /// <param name="concurrency">Messages in flight at once per queue in this process.</param>
    public WorkConsumers Add<TConsumer, TDefinition>(WorkQueues queues, int concurrency)
        where TConsumer : class, IConsumer
        where TDefinition : class, IConsumerDefinition<TConsumer>
    {
        _registrations.Add(new Registration(
            queues,
            concurrency,
            bus => bus.AddConsumer<TConsumer, TDefinition>(),
            (context, endpoint) => endpoint.ConfigureConsumer<TConsumer>(context)));
        return this;
    }

    internal sealed record Registration(
        WorkQueues Queues,
        int Concurrency,
        Action<IBusRegistrationConfigurator> Register,
        Action<IBusRegistrationContext, IReceiveEndpointConfigurator> Configure);
}
