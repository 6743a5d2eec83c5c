// A real OpenAI client (the official npm package) against LlmStream's /v1: one completion, one streamed
// completion with usage. Prints one JSON line with what it got; the NUnit suite checks it.
import OpenAI from "openai";

const [baseURL, apiKey = "unused"] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

const whole = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "hello from node" }],
});

let streamed = "";
let finish = null;
let usage = null;
let chunks = 0;
const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "stream from node" }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  chunks++;
  for (const choice of chunk.choices) {
    streamed += choice.delta?.content ?? "";
    finish = choice.finish_reason ?? finish;
  }
  usage = chunk.usage ?? usage;
}

let error = null;
try {
  await client.chat.completions.create({ model: "gpt-4o-mini", messages: [] });
} catch (e) {
  error = { status: e.status, param: e.param ?? e.error?.param ?? null };
}

console.log(JSON.stringify({
  whole: { content: whole.choices[0].message.content, finish: whole.choices[0].finish_reason, usage: whole.usage, id: whole.id },
  streamed: { content: streamed, finish, usage, chunks },
  error,
}));
