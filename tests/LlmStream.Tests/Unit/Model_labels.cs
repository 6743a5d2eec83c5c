using System.Diagnostics.Metrics;
using LlmStream.Providers;
using LlmStream.Providers.RateLimiting;
using LlmStream.ServiceDefaults.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LlmStream.Tests.Unit;

/// <summary>Clients choose model names: a metric's model label takes only the names the settings give.</summary>
public sealed class Model_labels
{
    [Test]
    public void Count_a_model_the_settings_do_not_name_as_other()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var catalog = new ModelCatalog(Options.Create(new ModelOptions { OpenAiApiKey = "sk-test", ModelContextTokens = "llama3=8192" }),
            Options.Create(new RateLimitOptions { ModelLimits = "gpt-4o=100/30000" }));
        var metrics = new LlmStreamMetrics(services.GetRequiredService<IMeterFactory>(), catalog);

        var labels = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == metrics.Meter && instrument.Name == "llmstream.tokens.generated")
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "model") labels.Add((string)tag.Value!);
        });
        listener.Start();

        foreach (var model in new[] { "gpt-4o-mini", "gpt-4o", "llama3", "text-embedding-3-small", "made-up-1", "made-up-2", "x\ny" })
            metrics.TokensGenerated(model, 1);

        Assert.That(labels, Is.EqualTo(new[] { "gpt-4o-mini", "gpt-4o", "llama3", "text-embedding-3-small", "other", "other", "other" }));
        Assert.That(catalog.Serves("made-up-1"), Is.True, "a real provider decides about names it was not told");
    }

    [Test]
    public void The_simulated_model_serves_only_the_names_it_lists()
    {
        var catalog = new ModelCatalog(Options.Create(new ModelOptions()), Options.Create(new RateLimitOptions()));
        Assert.That(catalog.Names, Is.EqualTo(new[] { "gpt-4o-mini", "text-embedding-3-small" }));
        Assert.That(catalog.Serves("gpt-4o-mini"), Is.True);
        Assert.That(catalog.Serves("gpt-5"), Is.False);
    }
}
