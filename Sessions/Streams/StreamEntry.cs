namespace LlmStream.Sessions.Streams;

/// <summary>One event of a session's stream. <see cref="Id"/> is the stream entry id ("ms-seq"), used as the SSE id.</summary>
public sealed record StreamEntry(string Id, string Type, string Data)
{
    public bool IsTerminal => StreamEventTypes.IsTerminal(Type);
}

public static class StreamEventTypes
{
    public const string Queued = "queued";
    public const string Started = "started";
    public const string Token = "token";
    public const string Done = "done";
    public const string Error = "error";
    public const string Cancelled = "cancelled";

    public static bool IsTerminal(string type) => type is Done or Error or Cancelled;
}
