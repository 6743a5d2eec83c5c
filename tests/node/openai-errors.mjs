// The official openai npm package meeting failures through LlmStream's /v1, with its own retries on (as its users run
// it): one whole and one streamed completion of the given model. Prints one JSON line: for each, the status, OpenAI's
// error code and the x-should-retry header the client saw.
import OpenAI from "openai";

const [baseURL, model, maxRetries = "2"] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: Number(maxRetries), timeout: 60_000 });

async function attempt(stream) {
  try {
    const answer = await client.chat.completions.create({ model, stream, messages: [{ role: "user", content: "fail me" }] });
    if (stream) for await (const _ of answer) { /* read it all */ }
    return { status: 200 };
  } catch (e) {
    return { status: e.status ?? null, code: e.code ?? null, type: e.type ?? null, shouldRetry: e.headers?.get?.("x-should-retry") ?? null, message: e.message };
  }
}

console.log(JSON.stringify({ whole: await attempt(false), streamed: await attempt(true) }));
