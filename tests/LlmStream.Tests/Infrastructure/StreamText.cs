using System.Text;
using System.Text.Json;

namespace LlmStream.Tests.Infrastructure;

/// <summary>What a client makes of a session's events: the text of the last attempt of a task, as the chat page shows it.</summary>
public static class StreamText
{
    public static string Of(IEnumerable<SseEvent> events, string taskId)
    {
        var text = new StringBuilder();
        foreach (var e in events)
        {
            using var data = JsonDocument.Parse(e.Data);
            if (data.RootElement.GetProperty("task_id").GetString() != taskId)
                continue;
            if (e.Event == "started")
                text.Clear(); // a new attempt replaces what an earlier one streamed
            else if (e.Event == "token")
                text.Append(data.RootElement.GetProperty("text").GetString());
        }
        return text.ToString();
    }

    public static JsonElement DataOf(SseEvent e) => JsonDocument.Parse(e.Data).RootElement.Clone();
}
