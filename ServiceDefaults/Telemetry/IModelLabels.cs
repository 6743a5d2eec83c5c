namespace LlmStream.ServiceDefaults.Telemetry;

/// <summary>What a metric's model label says for a model name: only names the settings give, so clients cannot grow the series.</summary>
public interface IModelLabels
{
    string Label(string model);
}
