using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace LlmStream.FakeOpenAI;

/// <summary>A tool call the fake model makes instead of answering with text.</summary>
/// <param name="Name">The function name.</param>
/// <param name="Arguments">The arguments as a JSON string, sent verbatim.</param>
public sealed record FakeToolCall(string Name, string Arguments);

/// <summary>One message of a recorded chat request; deconstructs to (role, content).</summary>
public readonly record struct RecordedMessage(string Role, string Content);

/// <summary>A chat request as the fake server received it.</summary>
public sealed class RecordedRequest
{
    private int _cancelled;
    private int _completed;

    internal RecordedRequest(
        DateTimeOffset receivedAt,
        string path,
        string query,
        string? model,
        bool stream,
        string body,
        IReadOnlyList<RecordedMessage> messages,
        bool hasTools,
        string? apiKey,
        IReadOnlyDictionary<string, string> headers)
    {
        ReceivedAt = receivedAt;
        Path = path;
        Query = query;
        Model = model;
        Stream = stream;
        Body = body;
        Messages = messages;
        HasTools = hasTools;
        ApiKey = apiKey;
        Headers = headers;
    }

    public DateTimeOffset ReceivedAt { get; }

    /// <summary>The request path, e.g. /v1/chat/completions or /openai/deployments/dep/chat/completions.</summary>
    public string Path { get; }

    /// <summary>The query string with its '?', e.g. "?api-version=2024-10-21"; "" when none.</summary>
    public string Query { get; }

    /// <summary>The body's model, or the Azure deployment name; null when the body was not valid JSON.</summary>
    public string? Model { get; }

    public bool Stream { get; }

    /// <summary>The raw JSON body.</summary>
    public string Body { get; }

    public IReadOnlyList<RecordedMessage> Messages { get; }

    /// <summary>Whether the request carried a non-empty <c>tools</c> array.</summary>
    public bool HasTools { get; }

    /// <summary>The key from <c>Authorization: Bearer</c> or <c>api-key</c>, if any.</summary>
    public string? ApiKey { get; }

    /// <summary>The request's headers (names case-insensitive; repeated headers joined with commas), e.g. <c>traceparent</c>.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>True when the client went away (RequestAborted fired) before the server finished the response.</summary>
    public bool Cancelled => Volatile.Read(ref _cancelled) != 0;

    /// <summary>True when the server finished the response (any status) without the client leaving first.</summary>
    public bool Completed => Volatile.Read(ref _completed) != 0;

    internal bool MarkCancelled() => Interlocked.Exchange(ref _cancelled, 1) == 0;

    internal void MarkCompleted() => Volatile.Write(ref _completed, 1);
}

/// <summary>
/// What the fake server does. Thread-safe: tests change it while requests are in flight.
/// Scripted failures (<see cref="FailNext"/>, <see cref="FailMidStreamNext"/>, <see cref="HangNext"/>)
/// form one FIFO queue for chat requests; each request takes the first entry that applies to it
/// (mid-stream entries apply to streaming requests only).
/// </summary>
public sealed class FakeBehavior
{
    private readonly Lock _gate = new();
    private readonly List<ChatScript> _chatScripts = [];
    private readonly Queue<int> _embeddingFailures = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly List<int> _embeddingBatchSizes = [];
    private readonly List<IReadOnlyList<string>> _embeddingInputs = [];
    private readonly List<IReadOnlyDictionary<string, string>> _embeddingHeaders = [];

    private Func<string, string> _reply = DefaultReply;
    private Func<string, FakeToolCall?>? _toolCall;
    private TimeSpan _tokenDelay = TimeSpan.Zero;
    bool _stampTokens;
    private int _chunkSize = 1;
    private string? _requiredApiKey;
    private int _chatRequests;
    private int _cancelledRequests;
    private int _embeddingRequests;

    public static string DefaultReply(string lastUserMessage) => "Echo: " + lastUserMessage;

    /// <summary>Given the last user message's text, the whole reply. Default: "Echo: " + message.</summary>
    public Func<string, string> Reply
    {
        get { lock (_gate) return _reply; }
        set { ArgumentNullException.ThrowIfNull(value); lock (_gate) _reply = value; }
    }

    /// <summary>
    /// When set and the request has tools and its last message is a user message, the call to make
    /// (null = answer with text). Given the last user message's text. A request whose last message is
    /// a tool result is answered with <see cref="Reply"/>, so tool loops end.
    /// </summary>
    public Func<string, FakeToolCall?>? ToolCall
    {
        get { lock (_gate) return _toolCall; }
        set { lock (_gate) _toolCall = value; }
    }

    /// <summary>Delay before answering each embedding request (lets a test kill a worker mid-batch).</summary>
    public TimeSpan EmbeddingDelay
    {
        get { lock (_gate) return _embeddingDelay; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_gate) _embeddingDelay = value;
        }
    }

    private TimeSpan _embeddingDelay;

    /// <summary>Delay before each content chunk (non-streaming: the same total before answering).</summary>
    public TimeSpan TokenDelay
    {
        get { lock (_gate) return _tokenDelay; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_gate) _tokenDelay = value;
        }
    }

    /// <summary>Delay before the first content chunk (non-streaming: added to the total); null: <see cref="TokenDelay"/>.</summary>
    public TimeSpan? FirstTokenDelay
    {
        get { lock (_gate) return _firstTokenDelay; }
        set
        {
            if (value is { } delay) ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
            lock (_gate) _firstTokenDelay = value;
        }
    }

    private TimeSpan? _firstTokenDelay;

    /// <summary>
    /// Benchmarks: each streamed content chunk is replaced by " " + <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>
    /// taken as it is sent, so a client in the same process can tell how long the chunk took to reach it.
    /// </summary>
    public bool StampTokens
    {
        get { lock (_gate) return _stampTokens; }
        set { lock (_gate) _stampTokens = value; }
    }

    /// <summary>Tokens (see <see cref="Tokenize"/>) per streamed content chunk. Default 1.</summary>
    public int ChunkSize
    {
        get { lock (_gate) return _chunkSize; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (_gate) _chunkSize = value;
        }
    }

    /// <summary>
    /// When set, a chat or embedding request naming another model (or Azure deployment) gets OpenAI's 404
    /// model_not_found (Azure's DeploymentNotFound). Default null: every model exists.
    /// </summary>
    public IReadOnlyCollection<string>? KnownModels
    {
        get { lock (_gate) return _knownModels; }
        set { lock (_gate) _knownModels = value; }
    }

    private IReadOnlyCollection<string>? _knownModels;

    /// <summary>When set, requests without this key (Bearer or api-key) get 401. Default null: any key or none.</summary>
    public string? RequiredApiKey
    {
        get { lock (_gate) return _requiredApiKey; }
        set { lock (_gate) _requiredApiKey = value; }
    }

    /// <summary>The next <paramref name="count"/> chat requests get <paramref name="statusCode"/> with an OpenAI error body.</summary>
    public void FailNext(int statusCode, int count = 1, TimeSpan? retryAfter = null, string? message = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 100);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Enqueue(new ChatScript(ChatScriptKind.Fail, statusCode, retryAfter, message, 0), count);
    }

    /// <summary>
    /// The next <paramref name="count"/> streaming chat requests send the role chunk and <paramref name="afterTokens"/>
    /// content chunks (all of them if fewer), then the connection is aborted (HttpContext.Abort, 100 ms after the
    /// last flush so the client has read them) with no finish chunk and no [DONE]. Not counted as cancelled.
    /// </summary>
    public void FailMidStreamNext(int afterTokens, int count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Enqueue(new ChatScript(ChatScriptKind.MidStream, 0, null, null, afterTokens), count);
    }

    /// <summary>The next <paramref name="count"/> chat requests never answer (until the client cancels or the server stops). Embeddings are not affected.</summary>
    public void HangNext(int count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Enqueue(new ChatScript(ChatScriptKind.Hang, 0, null, null, 0), count);
    }

    /// <summary>The next <paramref name="count"/> embedding requests get <paramref name="statusCode"/> with an OpenAI error body.</summary>
    public void FailNextEmbeddings(int statusCode, int count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 100);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (_gate)
        {
            for (var i = 0; i < count; i++) _embeddingFailures.Enqueue(statusCode);
        }
    }

    /// <summary>Scripted chat failures not yet used.</summary>
    public int PendingScripts
    {
        get { lock (_gate) return _chatScripts.Count; }
    }

    /// <summary>Chat requests received (every one, whatever its outcome).</summary>
    public int ChatRequests => Volatile.Read(ref _chatRequests);

    /// <summary>Chat requests the client abandoned before the server finished.</summary>
    public int CancelledRequests => Volatile.Read(ref _cancelledRequests);

    /// <summary>A snapshot of the chat requests received, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get { lock (_gate) return _requests.ToArray(); }
    }

    /// <summary>Embedding requests received (every one, whatever its outcome).</summary>
    public int EmbeddingRequests => Volatile.Read(ref _embeddingRequests);

    /// <summary>How many inputs each embedding request carried, in arrival order.</summary>
    public IReadOnlyList<int> EmbeddingBatchSizes
    {
        get { lock (_gate) return _embeddingBatchSizes.ToArray(); }
    }

    /// <summary>The inputs of each embedding request, in arrival order.</summary>
    public IReadOnlyList<IReadOnlyList<string>> EmbeddingInputs
    {
        get { lock (_gate) return _embeddingInputs.ToArray(); }
    }

    /// <summary>The headers of each embedding request (names case-insensitive), in arrival order.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, string>> EmbeddingHeaders
    {
        get { lock (_gate) return _embeddingHeaders.ToArray(); }
    }

    /// <summary>Back to defaults: clears scripts, counters and recordings.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _reply = DefaultReply;
            _toolCall = null;
            _tokenDelay = TimeSpan.Zero;
            _embeddingDelay = TimeSpan.Zero;
            _stampTokens = false;
            _chunkSize = 1;
            _requiredApiKey = null;
            _knownModels = null;
            _chatScripts.Clear();
            _embeddingFailures.Clear();
            _requests.Clear();
            _embeddingBatchSizes.Clear();
            _embeddingInputs.Clear();
            _embeddingHeaders.Clear();
            _chatRequests = 0;
            _cancelledRequests = 0;
            _embeddingRequests = 0;
        }
    }

    /// <summary>
    /// Splits text into the fake model's tokens: a new token starts at every whitespace character
    /// that follows a non-whitespace character, so each word keeps the whitespace before it and
    /// the tokens concatenate back to the text. "Echo: hi there" gives ["Echo:", " hi", " there"].
    /// </summary>
    public static IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        var start = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (char.IsWhiteSpace(text[i]) && !char.IsWhiteSpace(text[i - 1]))
            {
                tokens.Add(text[start..i]);
                start = i;
            }
        }
        if (start < text.Length) tokens.Add(text[start..]);
        return tokens;
    }

    /// <summary>Words (whitespace-separated runs) in text; the fake's prompt token count.</summary>
    public static int CountWords(string text) =>
        text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;

    /// <summary>
    /// A deterministic vector in [-1, 1]: SHA-256 of the UTF-8 text followed by a little-endian
    /// block counter, each 4 hash bytes read as a little-endian uint and scaled.
    /// </summary>
    public static float[] EmbeddingOf(string text, int dimensions)
    {
        var textBytes = Encoding.UTF8.GetBytes(text);
        var input = new byte[textBytes.Length + sizeof(int)];
        textBytes.CopyTo(input, 0);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var result = new float[dimensions];
        var filled = 0;
        for (var block = 0; filled < dimensions; block++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(input.AsSpan(textBytes.Length), block);
            SHA256.HashData(input, hash);
            for (var j = 0; j + sizeof(uint) <= hash.Length && filled < dimensions; j += sizeof(uint))
            {
                var u = BinaryPrimitives.ReadUInt32LittleEndian(hash[j..]);
                result[filled++] = (float)(u / (double)uint.MaxValue * 2.0 - 1.0);
            }
        }
        return result;
    }

    internal Settings Snapshot()
    {
        lock (_gate) return new Settings(_reply, _toolCall, _tokenDelay, _firstTokenDelay ?? _tokenDelay, _chunkSize, _stampTokens);
    }

    internal bool Knows(string? model) => KnownModels is not { } known || (model is not null && known.Contains(model));

    internal void RecordChat(RecordedRequest request)
    {
        Interlocked.Increment(ref _chatRequests);
        lock (_gate) _requests.Add(request);
    }

    internal void MarkCancelled(RecordedRequest request)
    {
        if (request.MarkCancelled()) Interlocked.Increment(ref _cancelledRequests);
    }

    internal ChatScript? TakeChatScript(bool stream)
    {
        lock (_gate)
        {
            for (var i = 0; i < _chatScripts.Count; i++)
            {
                var script = _chatScripts[i];
                if (script.Kind == ChatScriptKind.MidStream && !stream) continue;
                _chatScripts.RemoveAt(i);
                return script;
            }
            return null;
        }
    }

    internal void RecordEmbeddings(IReadOnlyList<string> inputs, IReadOnlyDictionary<string, string> headers)
    {
        Interlocked.Increment(ref _embeddingRequests);
        lock (_gate)
        {
            _embeddingBatchSizes.Add(inputs.Count);
            _embeddingInputs.Add(inputs);
            _embeddingHeaders.Add(headers);
        }
    }

    internal void CountEmbeddingRequest() => Interlocked.Increment(ref _embeddingRequests);

    internal int? TakeEmbeddingFailure()
    {
        lock (_gate) return _embeddingFailures.TryDequeue(out var status) ? status : null;
    }

    private void Enqueue(ChatScript script, int count)
    {
        lock (_gate)
        {
            for (var i = 0; i < count; i++) _chatScripts.Add(script);
        }
    }

    internal sealed record Settings(
        Func<string, string> Reply,
        Func<string, FakeToolCall?>? ToolCall,
        TimeSpan TokenDelay,
        TimeSpan FirstTokenDelay,
        int ChunkSize,
        bool StampTokens);
}

internal enum ChatScriptKind
{
    Fail,
    MidStream,
    Hang,
}

internal sealed record ChatScript(ChatScriptKind Kind, int StatusCode, TimeSpan? RetryAfter, string? Message, int AfterTokens);
