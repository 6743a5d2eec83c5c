using System.Text.Json;
using LlmStream.Gateway.Chat;

namespace LlmStream.Tests.Unit;

public sealed class Chat_request_validation
{
    static (ChatRequest? Request, Dictionary<string, string[]> Errors) Parse(string json) =>
        ChatRequest.Parse(JsonDocument.Parse(json).RootElement);

    [Test]
    public void Accepts_a_full_request()
    {
        var (request, errors) = Parse("""{"message":"hi","session_id":"s-1","model":"m","system_prompt":"be brief","priority":7,"user_id":"u"}""");
        Assert.That(errors, Is.Empty);
        Assert.That(request, Is.EqualTo(new ChatRequest("hi", "s-1", "m", "be brief", 7, "u")));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Accepts_the_original_apis_stream_flag(bool stream)
    {
        var (request, errors) = Parse($$"""{"message":"hi","stream":{{(stream ? "true" : "false")}}}""");
        Assert.That(errors, Is.Empty);
        Assert.That(request!.Message, Is.EqualTo("hi"));
    }

    [Test]
    public void Treats_null_optional_fields_as_absent()
    {
        var (request, errors) = Parse("""{"message":"hi","session_id":null,"priority":null}""");
        Assert.That(errors, Is.Empty);
        Assert.That(request!.SessionId, Is.Null);
        Assert.That(request.Priority, Is.Null);
    }

    [TestCase("""{}""", "message", "is required")]
    [TestCase("""{"message":null}""", "message", "is required")]
    [TestCase("""{"message":"   "}""", "message", "must not be blank")]
    [TestCase("""{"message":42}""", "message", "must be a string, not a number")]
    [TestCase("""{"message":["a"]}""", "message", "must be a string, not an array")]
    [TestCase("""{"message":"x","priority":11}""", "priority", "must be between -10 and 10, not 11")]
    [TestCase("""{"message":"x","priority":-11}""", "priority", "must be between -10 and 10, not -11")]
    [TestCase("""{"message":"x","priority":1.5}""", "priority", "must be an integer between -10 and 10, not 1.5")]
    [TestCase("""{"message":"x","priority":"5"}""", "priority", "must be an integer between -10 and 10, not a string")]
    [TestCase("""{"message":"x","priority":true}""", "priority", "must be an integer between -10 and 10, not a boolean")]
    [TestCase("""{"message":"x","session_id":"has space"}""", "session_id", "must be 1 to 128 characters")]
    [TestCase("""{"message":"x","session_id":7}""", "session_id", "must be a string, not a number")]
    [TestCase("""{"message":"x","model":""}""", "model", "must not be blank")]
    [TestCase("""{"message":"x","prority":1}""", "prority", "unknown field")]
    [TestCase("""{"message":"x","stream":"yes"}""", "stream", "must be true or false, not a string")]
    [TestCase("""{"message":"\ud800"}""", "message", "is not valid text")]
    public void Names_the_field_that_is_wrong(string json, string field, string message)
    {
        var (request, errors) = Parse(json);
        Assert.That(request, Is.Null);
        Assert.That(errors.Keys, Is.EquivalentTo(new[] { field }));
        Assert.That(errors[field].Single(), Does.StartWith(message));
    }

    [Test]
    public void Reports_every_wrong_field_at_once()
    {
        var (_, errors) = Parse("""{"message":1,"priority":99,"user_id":false}""");
        Assert.That(errors.Keys, Is.EquivalentTo(new[] { "message", "priority", "user_id" }));
    }
}
