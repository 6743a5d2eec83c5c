namespace LlmStream.Sessions.Streams;

/// <summary>Reading the per-session event streams (the task store writes them, together with the task records).</summary>
public interface ISessionStreams
{
    /// <summary>Entries after <paramref name="afterId"/> ("0" for the start), oldest first.</summary>
    Task<IReadOnlyList<StreamEntry>> ReadAsync(string sessionId, string afterId, int count, CancellationToken cancellationToken);

    /// <summary>The newest entry of the session's stream; null when the session is unknown or expired.</summary>
    Task<StreamEntry?> LastAsync(string sessionId, CancellationToken cancellationToken);
}
