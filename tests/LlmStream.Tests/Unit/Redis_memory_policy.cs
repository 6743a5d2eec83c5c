using LlmStream.ServiceDefaults.Redis;

namespace LlmStream.Tests.Unit;

/// <summary>Reading Redis's INFO memory for the readiness check: only a memory limit with an evicting policy is a risk.</summary>
public sealed class Redis_memory_policy
{
    [TestCase("# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n", null)]
    [TestCase("# Memory\r\nmaxmemory:1073741824\r\nmaxmemory_policy:noeviction\r\n", null)]
    [TestCase("# Memory\r\nmaxmemory:1073741824\r\nmaxmemory_policy:volatile-lru\r\n", "volatile-lru")]
    [TestCase("maxmemory:1\nmaxmemory_policy:allkeys-random", "allkeys-random")]
    [TestCase("# Memory\r\nused_memory:1024\r\n", null)]
    [TestCase("", null)]
    public void Names_an_evicting_policy_under_a_memory_limit(string info, string? policy)
    {
        var risk = RedisHealthCheck.EvictionRisk(info);
        if (policy is null)
            Assert.That(risk, Is.Null);
        else
            Assert.That(risk, Does.Contain($"maxmemory-policy {policy}").And.Contain("set maxmemory-policy noeviction"));
    }
}
