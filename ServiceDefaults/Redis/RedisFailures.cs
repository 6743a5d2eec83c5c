using StackExchange.Redis;

namespace LlmStream.ServiceDefaults.Redis;

public static class RedisFailures
{
    /// <summary>
    /// Redis refused, lost the connection, or did not answer in time. StackExchange.Redis reports the last as a
    /// <see cref="RedisTimeoutException"/>, which is a <see cref="TimeoutException"/> and not a <see cref="RedisException"/>:
    /// a handler that catches only the latter lets a slow Redis through as a crash.
    /// </summary>
    public static bool IsRedisFailure(this Exception e) => e is RedisException or RedisTimeoutException;
}
