using System.Globalization;

namespace LlmStream.Tests.Infrastructure;

/// <summary>Reading /metrics (the Prometheus text format).</summary>
public static class PrometheusText
{
    /// <summary>The sum of a metric's samples over all its label sets.</summary>
    public static double Sum(string metrics, string name) =>
        metrics.Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal) && (l.Length == name.Length || l[name.Length] is ' ' or '{'))
            .Sum(SampleValue);

    /// <summary>The value of one sample line: what follows the name and labels (a timestamp may follow it).</summary>
    public static double SampleValue(string line) =>
        double.Parse(line[(line.Contains('}') ? line.LastIndexOf('}') + 1 : line.IndexOf(' '))..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
}
