using LlmStream.Sessions;

namespace LlmStream.Gateway.Access;

/// <summary>Task and session ids: 128 random bits (<see cref="SessionShards.NewId"/>), so nobody can guess another user's stream.</summary>
public static class Ids
{
    /// <summary>The longest session id a client may choose.</summary>
    public const int MaxClientIdLength = 128;

    /// <summary>A task id of the session: in its shard, so the task and the session's stream share a Redis slot.</summary>
    public static string NewTask(string sessionId) => SessionShards.NewTaskId(sessionId);

    public static bool IsValidClientId(string id) =>
        id.Length is > 0 and <= MaxClientIdLength && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
