// The official openai npm package against LlmStream's /v1/responses: create, a background stream broken off at its
// 10th event and resumed on another gateway with starting_after, retrieve, cancel, a two-turn conversation with
// previous_response_id, a function-tool round trip, and a refused parameter. Prints one JSON line; the NUnit suite checks it.
import OpenAI from "openai";

const [baseA, baseB = baseA, apiKey = "unused"] = process.argv.slice(2);
const a = new OpenAI({ baseURL: baseA, apiKey, maxRetries: 0, timeout: 60_000 });
const b = new OpenAI({ baseURL: baseB, apiKey, maxRetries: 0, timeout: 60_000 });
const model = "gpt-4o-mini";

const created = await a.responses.create({ model, input: "hello from responses", instructions: "Be brief." });

// Background + stream: 10 events from gateway A, then the rest from gateway B after the 10th's sequence number.
const firstEvents = [];
const stream = a.responses.stream({ model, input: "stream me in the background", background: true });
for await (const event of stream) {
  firstEvents.push(event);
  if (firstEvents.length === 10) break;
}
const id = firstEvents[0].response.id;
const lastSeen = firstEvents[9].sequence_number;
const restEvents = [];
const resumed = b.responses.stream({ response_id: id, starting_after: lastSeen });
for await (const event of resumed) restEvents.push(event);
const resumedFinal = await resumed.finalResponse();
const retrieved = await b.responses.retrieve(id);
const all = [...firstEvents, ...restEvents];

// Cancel while it runs (the provider is slow for this one), then cancel one that has completed: it stays completed.
const running = await a.responses.create({ model, input: "slow: cancel me", background: true });
const cancelled = await a.responses.cancel(running.id);
const cancelledLater = await b.responses.retrieve(running.id);
const cancelCompleted = await a.responses.cancel(created.id);

// Two turns: the second continues the first on the server.
const turn1 = await a.responses.create({ model, input: "my name is Ada" });
const turn2 = await b.responses.create({ model, input: "what is my name?", previous_response_id: turn1.id });

// A function tool: the model calls it, the client answers with its output, the model answers in words.
const tools = [{ type: "function", name: "get_weather", description: "Weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: true }];
const asked = await a.responses.create({ model, input: "what is the weather in Paris?", tools });
const call = asked.output.find((item) => item.type === "function_call");
const answered = call && await a.responses.create({
  model, tools, previous_response_id: asked.id,
  input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" }],
});

let refused = null;
try {
  await a.responses.create({ model, input: "hi", prompt_cache_key: "x" });
} catch (e) {
  refused = { status: e.status, param: e.param ?? e.error?.param ?? null };
}

console.log(JSON.stringify({
  created: { id: created.id, status: created.status, text: created.output_text, usage: created.usage, instructions: created.instructions },
  streamed: {
    id,
    types: all.map((e) => e.type),
    sequence: all.map((e) => e.sequence_number),
    deltas: all.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join(""),
    final: resumedFinal.output_text,
    finalStatus: resumedFinal.status,
    retrievedStatus: retrieved.status,
    retrievedText: retrieved.output_text,
    background: retrieved.background,
  },
  cancelled: { status: cancelled.status, later: cancelledLater.status, completedStays: cancelCompleted.status },
  turns: { first: turn1.output_text, second: turn2.output_text, previous: turn2.previous_response_id, turn1: turn1.id },
  tool: { call: call && { name: call.name, arguments: call.arguments, call_id: call.call_id }, askedStatus: asked.status, answer: answered?.output_text ?? null },
  refused,
}));
