using System.Text.Json;
using LlmStream.Sessions.Streams;

namespace LlmStream.Tests.Unit;

/// <summary>A token event is built from its attempt's prefix without the serializer, and must read exactly as the serializer writes it.</summary>
public sealed class Token_events
{
    [TestCase("plain")]
    [TestCase(" leading space")]
    [TestCase("quote \" and backslash \\")]
    [TestCase("line\nbreak\r\ttab")]
    [TestCase("<script>&'+`")]
    [TestCase("été, 日本語, emoji 🚀")]
    [TestCase("\u0000\u001f\u007f\u2028\u2029")]
    [TestCase("\"text\":\"x\"}")]
    [TestCase("")]
    public void A_token_event_is_the_serializers_json(string text)
    {
        const string TaskId = "t-1234\"odd";
        var expected = JsonSerializer.Serialize(new { TaskId, Attempt = 12, Text = text }, StreamEvents.Json);
        Assert.That(StreamEvents.Token(TaskId, 12, text), Is.EqualTo(expected));
        Assert.That(StreamEvents.Token(StreamEvents.TokenPrefix(TaskId, 12), text), Is.EqualTo(expected));
    }

    [Test]
    public void A_lone_surrogate_is_written_as_the_serializer_writes_it()
    {
        var text = "half \ud83d of an emoji";
        Assert.That(StreamEvents.Token("t", 1, text), Is.EqualTo(JsonSerializer.Serialize(new { TaskId = "t", Attempt = 1, Text = text }, StreamEvents.Json)));
    }
}
