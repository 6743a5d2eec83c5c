using System.Security.Cryptography;

namespace LlmStream.Gateway.Access;

/// <summary>Task and session ids: 128 random bits, so nobody can guess another user's stream.</summary>
public static class Ids
{
    /// <summary>The longest session id a client may choose.</summary>
    public const int MaxClientIdLength = 128;

    public static string New() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public static bool IsValidClientId(string id) =>
        id.Length is > 0 and <= MaxClientIdLength && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
