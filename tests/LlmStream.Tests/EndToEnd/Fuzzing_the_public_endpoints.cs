using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.EndToEnd;

/// <summary>
/// Seeded random bad input against every public endpoint of a gateway with RabbitMQ and Redis and no worker:
/// malformed and truncated JSON, invalid UTF-8, lone surrogates, control characters, deep nesting, huge
/// bodies, wrong types and odd ids. Every answer is a 4xx with a readable JSON error, never a 5xx, and
/// nothing is enqueued or stored for any of them.
/// </summary>
public sealed class Fuzzing_the_public_endpoints
{
    const int Seed = 20261124;
    const int Rounds = 400;

    Cluster _cluster = null!;
    HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _cluster = await Cluster.StartAsync("fuzz", workers: 0);
        _http = _cluster.Client();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _cluster.DisposeAsync();
    }

    static readonly string[] BodyEndpoints = ["/chat", "/embeddings", "/v1/chat/completions", "/v1/embeddings", "/v1/responses"];

    /// <summary>A valid body per endpoint: every mutation below breaks it.</summary>
    static string ValidBody(string endpoint) => endpoint switch
    {
        "/chat" => """{"message":"hello","priority":3,"model":"gpt-4o-mini"}""",
        "/embeddings" => """{"texts":["one","two"],"priority":0}""",
        "/v1/chat/completions" => """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"stream":false}""",
        "/v1/responses" => """{"model":"gpt-4o-mini","input":[{"role":"user","content":"hello"}],"stream":false}""",
        _ => """{"model":"text-embedding-3-small","input":["one","two"]}""",
    };

    /// <summary>The field each endpoint cannot do without, to break with a wrong value.</summary>
    static string MainField(string endpoint) => endpoint switch
    {
        "/chat" => "message",
        "/embeddings" => "texts",
        "/v1/chat/completions" => "messages",
        _ => "input",
    };

    /// <summary>Wrong for any field here (null is fine where a field is optional: it means the default).</summary>
    static readonly string[] WrongValues =
    [
        "true", "12", "1e400", "-0.5", "\"\"", "[]", "{}", "[1,2,3]", "{\"a\":1}", "\"\\ud800\"", "\"\\udfff x\"",
        "[\"\\ud800\"]", "[null]", "[{}]", "[\"\"]", "[[\"x\"]]", "NaN",
    ];

    static byte[] Mutate(Random random, string endpoint, out string what)
    {
        var valid = ValidBody(endpoint);
        var field = MainField(endpoint);
        switch (random.Next(9))
        {
            case 0:
                var cut = random.Next(0, valid.Length);
                what = $"truncated at {cut}";
                return Encoding.UTF8.GetBytes(valid[..cut]);
            case 1:
                what = "invalid UTF-8 inside a string";
                var bytes = Encoding.UTF8.GetBytes(valid).ToList();
                var at = Encoding.UTF8.GetBytes(valid).AsSpan().IndexOf("\"hello\""u8) is var i and >= 0 ? i + 2 : bytes.IndexOf((byte)'o');
                bytes.InsertRange(Math.Max(1, at), [0xC3, 0x28, 0xFF, 0xFE, 0x80]);
                return [.. bytes];
            case 2:
                var depth = random.Next(64, 5000);
                what = $"nested {depth} deep in the main field";
                return Encoding.UTF8.GetBytes($"{{\"{field}\":{new string('[', depth)}{new string(']', depth)}}}");
            case 3:
                var wrong = random.Next(4) == 0 ? "null" : WrongValues[random.Next(WrongValues.Length)];
                what = $"{field} = {wrong}";
                return Encoding.UTF8.GetBytes(ReplaceField(valid, field, wrong));
            case 4:
                what = "raw control characters in the JSON text";
                return Encoding.UTF8.GetBytes(valid.Replace("hello", "hel\u0001\u0000lo", StringComparison.Ordinal).Replace("\"one\"", "\"o\u0002ne\"", StringComparison.Ordinal));
            case 5: // /v1 refuses an unknown parameter too, as OpenAI does (only do-nothing values such as null pass)
                var extra = $"x{random.Next(1000)}";
                what = $"unknown field {extra}";
                return Encoding.UTF8.GetBytes(valid.Insert(1, $"\"{extra}\":{WrongValues[random.Next(WrongValues.Length)]},"));
            case 6:
                what = "random bytes";
                var noise = new byte[random.Next(1, 2000)];
                random.NextBytes(noise);
                noise[0] = (byte)'{';
                return noise;
            case 7:
                what = "a JSON value that is not an object";
                return Encoding.UTF8.GetBytes(WrongValues[random.Next(WrongValues.Length)]);
            default:
                what = "priority or model of a wrong shape";
                return Encoding.UTF8.GetBytes(random.Next(2) == 0
                    ? valid.Insert(1, $"\"priority\":{WrongValues[random.Next(WrongValues.Length)]},").Replace(",\"priority\":3", "", StringComparison.Ordinal).Replace(",\"priority\":0", "", StringComparison.Ordinal)
                    : ReplaceField(valid, "model", WrongValues[random.Next(WrongValues.Length)]));
        }
    }

    static string ReplaceField(string json, string field, string value)
    {
        using var document = JsonDocument.Parse(json);
        var parts = document.RootElement.EnumerateObject()
            .Select(p => p.Name == field ? $"\"{p.Name}\":{value}" : $"\"{p.Name}\":{p.Value.GetRawText()}");
        var body = "{" + string.Join(",", parts) + "}";
        return body.Contains($"\"{field}\":", StringComparison.Ordinal) ? body : body.Insert(1, $"\"{field}\":{value},");
    }

    [Test]
    public async Task Random_bad_bodies_get_a_4xx_with_a_readable_error_and_leave_nothing_behind()
    {
        var random = new Random(Seed);
        var failures = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            var endpoint = BodyEndpoints[random.Next(BodyEndpoints.Length)];
            var body = Mutate(random, endpoint, out var what);
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            // A rejected request is answered at once; one that was accepted would wait for a worker that never comes.
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            HttpResponseMessage response;
            try
            {
                response = await _http.PostAsync(endpoint, content, cts.Token);
            }
            catch (OperationCanceledException)
            {
                failures.Add($"round {round} POST {endpoint} ({what}): no answer in 15 s: {Shorten(Encoding.UTF8.GetString(body))}");
                continue;
            }
            var text = await response.Content.ReadAsStringAsync();
            var status = (int)response.StatusCode;
            if (status is < 400 or >= 500 || !IsReadableError(text))
                failures.Add($"round {round} POST {endpoint} ({what}): {status} {Shorten(text)}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
        await EnqueuedWork.AssertOnlyAcceptedAsync(_cluster, 0);
    }

    [Test]
    public async Task Bad_ids_headers_and_content_types_get_a_4xx_never_a_5xx()
    {
        // Header values beyond ASCII go out as Latin-1 bytes, as a careless client would send them.
        using var latin1 = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.Latin1 }) { BaseAddress = _cluster.GatewayUrl };
        string[] ids = ["x", "%00", "..%2F..%2Fetc%2Fpasswd", new string('a', 5000), "%F0%9F%92%A9", "%C3%28", "0123456789abcdef0123456789abcdef", "%20"];
        var failures = new List<string>();
        foreach (var id in ids)
        {
            foreach (var (method, path) in new[]
            {
                (HttpMethod.Get, $"/chat/{id}"), (HttpMethod.Delete, $"/chat/{id}"), (HttpMethod.Get, $"/embeddings/{id}"),
                (HttpMethod.Get, $"/stream/{id}"), (HttpMethod.Get, $"/stream/{id}?last_event_id={id}"),
                (HttpMethod.Get, $"/v1/responses/{id}"), (HttpMethod.Get, $"/v1/responses/resp_{id}?stream=true&starting_after={id}"),
                (HttpMethod.Post, $"/v1/responses/resp_{id}/cancel"), (HttpMethod.Delete, $"/v1/responses/resp_{id}"),
            })
            {
                using var request = new HttpRequestMessage(method, path);
                request.Headers.TryAddWithoutValidation("Last-Event-ID", id.Length < 100 ? id + "\u00e9" : id);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var response = await latin1.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
                var status = (int)response.StatusCode;
                if (status is < 400 or >= 500)
                    failures.Add($"{method} {path}: {status}");
            }
        }

        foreach (var endpoint in BodyEndpoints)
        {
            foreach (var type in new[] { "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "multipart/form-data; boundary=x", "json" })
            {
                using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(ValidBody(endpoint)));
                content.Headers.TryAddWithoutValidation("Content-Type", type);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var response = await _http.PostAsync(endpoint, content, cts.Token);
                if (response.StatusCode != HttpStatusCode.UnsupportedMediaType || !IsReadableError(await response.Content.ReadAsStringAsync()))
                    failures.Add($"POST {endpoint} as {type}: {(int)response.StatusCode} {Shorten(await response.Content.ReadAsStringAsync())}");
            }
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    /// <summary>RFC 7807 problem details, or OpenAI's error object on /v1.</summary>
    static bool IsReadableError(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.TryGetProperty("detail", out var detail))
                return detail.GetString() is { Length: > 0 };
            return root.TryGetProperty("error", out var error) && error.TryGetProperty("message", out var message) && message.GetString() is { Length: > 0 };
        }
        catch (JsonException)
        {
            return false;
        }
    }

    static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
