using MassTransit;
using MassTransit.Mediator;

namespace LlmStream.Messaging;

/// <summary>
/// The consumers a process runs, each attached to the three queues of its kind of work.
/// The same consumer classes run on every broker.
/// </summary>
public sealed class WorkConsumers
{
    readonly List<Registration> _registrations = [];

    internal IReadOnlyList<Registration> Registrations => _registrations;

    public bool IsEmpty => _registrations.Count == 0;

    /// <param name="concurrency">Messages in flight at once in this process, across the three queues.</param>
    /// <param name="deadLettered">Ends the work of a message the broker dead-lettered without its consumer finishing (Redis: too many deliveries).</param>
    public WorkConsumers Add<TMessage, TConsumer, TDefinition>(WorkQueues queues, int concurrency,
        Func<IServiceProvider, TMessage, string, Task>? deadLettered = null)
        where TMessage : class
        where TConsumer : class, IConsumer<TMessage>
        where TDefinition : class, IConsumerDefinition<TConsumer>
    {
        _registrations.Add(new Registration(
            queues,
            concurrency,
            typeof(TMessage),
            registration => registration.AddConsumer<TConsumer, TDefinition>(),
            (context, endpoint) => endpoint.ConfigureConsumer<TConsumer>(context),
            (mediator, body, cancellationToken) => mediator.Send(MessageBodies.Deserialize<TMessage>(body), cancellationToken),
            deadLettered is null ? null : (services, body, reason) => deadLettered(services, MessageBodies.Deserialize<TMessage>(body), reason)));
        return this;
    }

    internal sealed record Registration(
        WorkQueues Queues,
        int Concurrency,
        Type MessageType,
        Action<IRegistrationConfigurator> Register,
        Action<IRegistrationContext, IReceiveEndpointConfigurator> Configure,
        Func<IMediator, ReadOnlyMemory<byte>, CancellationToken, Task> SendThroughMediator,
        Func<IServiceProvider, ReadOnlyMemory<byte>, string, Task>? DeadLettered);
}
