// The chat page: POST /chat, then follow the session's event stream (GET /stream/{session_id}) and render the
// answer as it arrives. A dropped stream is resumed with Last-Event-ID, and an event at or before the last one
// seen is ignored, so no text is ever shown twice. Model text goes through Markdown.render, which creates text
// nodes only; the user's text is set with textContent. Nothing is ever parsed as HTML.
// The conversation is kept in sessionStorage: after a reload (or a visit to the dashboard) it is shown again,
// and an answer that was still arriving is followed on from the last event it had.
"use strict";

const conversation = document.getElementById("conversation");
const form = document.getElementById("chat");
const sendButton = document.getElementById("send");
const cancelButton = document.getElementById("cancel");
const modelSelect = document.getElementById("model");
const storageKey = "llmstream.chat";

let sessionId = null;
let sessionLastEventId = null; // the newest event seen in this session: a new task's events come after it
let current = null; // the answer being generated
const entries = []; // the conversation: { role, text, ...answer fields, li, body, state }

async function loadModels() {
  const result = await LlmStreamApi.request("GET", "/v1/models");
  if (!result.ok || !Array.isArray(result.body?.data)) return;
  const chosen = modelSelect.value;
  modelSelect.replaceChildren(new Option("default", ""));
  for (const model of result.body.data) {
    if (typeof model?.id === "string" && !/embedding/i.test(model.id)) modelSelect.append(new Option(model.id, model.id));
  }
  modelSelect.value = [...modelSelect.options].some((o) => o.value === chosen) ? chosen : "";
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // works outside secure contexts, unlike randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function bubble(role) {
  document.getElementById("empty").hidden = true;
  const li = document.createElement("li");
  li.className = role;
  const body = document.createElement("div");
  body.className = "body";
  const state = document.createElement("div");
  state.className = "state";
  li.append(body, state);
  conversation.append(li);
  li.scrollIntoView({ block: "end" });
  const entry = { role, text: "", li, body, state };
  entries.push(entry);
  return entry;
}

const savedFields = ["role", "text", "taskId", "streamUrl", "attempt", "lastEventId", "ended", "stateName", "label", "reconnects"];

function save() {
  try {
    const items = entries.map((entry) => Object.fromEntries(savedFields.map((field) => [field, entry[field]])));
    sessionStorage.setItem(storageKey, JSON.stringify({ sessionId, sessionLastEventId, items }));
  } catch {
    // storage full or refused: the page still works, it just forgets on reload
  }
}

function restore() {
  let saved;
  try {
    saved = JSON.parse(sessionStorage.getItem(storageKey) || "null");
  } catch {
    saved = null;
  }
  if (!saved || !Array.isArray(saved.items)) return;
  sessionId = typeof saved.sessionId === "string" ? saved.sessionId : null;
  sessionLastEventId = typeof saved.sessionLastEventId === "string" ? saved.sessionLastEventId : null;
  let unfinished = null;
  for (const item of saved.items) {
    if (item?.role !== "user" && item?.role !== "assistant") continue;
    const entry = bubble(item.role);
    for (const field of savedFields) if (field !== "role" && item[field] !== undefined) entry[field] = item[field];
    entry.text = String(entry.text || "");
    if (entry.role === "user") entry.body.textContent = entry.text;
    else {
      if (entry.taskId) entry.li.dataset.taskId = entry.taskId;
      entry.li.dataset.reconnects = String(entry.reconnects || 0);
      setState(entry, entry.stateName || "error", entry.label || "");
      renderNow(entry);
      if (!entry.ended && entry.taskId && entry.streamUrl) unfinished = entry;
      else if (!entry.ended) {
        entry.ended = true;
        setState(entry, "error", "the page was left before the gateway answered; send it again");
      }
    }
  }
  if (unfinished) run(unfinished, () => follow(unfinished, unfinished.streamUrl));
}

function setState(answer, stateName, label) {
  answer.stateName = stateName;
  answer.label = label;
  answer.li.dataset.state = stateName;
  answer.state.textContent = label;
  answer.li.classList.toggle("error", stateName === "error");
  answer.li.classList.toggle("cancelled", stateName === "cancelled");
  save();
}

/** Runs the work of one answer; Send is off and Cancel on until it ends. */
async function run(answer, work) {
  current = answer;
  sendButton.disabled = true;
  cancelButton.disabled = !answer.taskId;
  try {
    await work();
  } finally {
    current = null;
    sendButton.disabled = false;
    cancelButton.disabled = true;
    save();
  }
}

form.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.getElementById("new-chat").addEventListener("click", () => {
  if (current) return; // finish or cancel the running answer first
  sessionId = null;
  sessionLastEventId = null;
  entries.length = 0;
  conversation.replaceChildren();
  document.getElementById("empty").hidden = false;
  save();
  form.message.focus();
});

cancelButton.addEventListener("click", async () => {
  const answer = current;
  if (!answer?.taskId) return;
  cancelButton.disabled = true;
  const before = [answer.stateName, answer.label];
  setState(answer, "cancelling", "cancelling…");
  const result = await LlmStreamApi.request("DELETE", `/chat/${encodeURIComponent(answer.taskId)}`);
  // 200: the stream brings the cancelled event; 409: it had already ended and the stream brings that end.
  if (!result.ok && result.status !== 409 && !answer.ended) {
    setState(answer, before[0], `could not cancel: ${LlmStreamApi.problemText(result.status, result.body)}`);
    cancelButton.disabled = false;
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = form.message.value.trim();
  if (!message || current) return;
  const payload = { message, priority: Number(form.priority.value) };
  if (modelSelect.value) payload.model = modelSelect.value;
  if (sessionId) payload.session_id = sessionId;

  const question = bubble("user");
  question.text = message;
  question.body.textContent = message;
  form.message.value = "";
  const answer = bubble("assistant");
  answer.attempt = 0;
  answer.lastEventId = sessionLastEventId;
  answer.reconnects = 0;
  answer.li.dataset.reconnects = "0";
  setState(answer, "sending", "sending…");
  run(answer, () => send(answer, payload));
});

async function send(answer, payload) {
  // The same Idempotency-Key on a repeated send can never start a second generation.
  const result = await LlmStreamApi.request("POST", "/chat", payload, { "Idempotency-Key": randomKey() });
  if (!result.ok) {
    answer.ended = true;
    setState(answer, "error", LlmStreamApi.problemText(result.status, result.body));
    if (result.status === 409 || result.status === 404) sessionId = null; // busy or expired session: start afresh
    return;
  }
  sessionId = result.body.session_id;
  answer.taskId = result.body.task_id;
  answer.streamUrl = result.body.stream_url;
  answer.li.dataset.taskId = answer.taskId;
  cancelButton.disabled = false;
  setState(answer, "queued", `queued (${result.body.queue})`);
  await follow(answer, answer.streamUrl);
}

/** Follows the stream until this task's terminal event, reconnecting after the last event seen. */
async function follow(answer, streamUrl) {
  let retryMs = 2000;
  let failures = 0;
  while (!answer.ended) {
    const before = answer.lastEventId;
    try {
      await LlmStreamApi.readEvents(streamUrl, {
        lastEventId: answer.lastEventId,
        onEvent: (event) => handle(answer, event),
        onRetry: (ms) => (retryMs = ms),
      });
    } catch (error) {
      if (error instanceof LlmStreamApi.HttpError && error.status >= 400 && error.status < 500) {
        answer.ended = true;
        setState(answer, "error", `stream unavailable: ${error.message}`);
        return;
      }
    }
    if (answer.ended) return;
    failures = answer.lastEventId === before ? failures + 1 : 0;
    if (failures > 30) {
      answer.ended = true;
      setState(answer, "error", "the stream keeps failing; reload the page to try again");
      return;
    }
    answer.reconnects++;
    answer.li.dataset.reconnects = String(answer.reconnects);
    answer.state.textContent = "connection lost: reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, Math.min(retryMs * Math.max(1, failures), 10000)));
  }
}

function handle(answer, event) {
  // Never apply an event twice: after a reconnect the server starts after Last-Event-ID, and this guards the rest.
  if (event.id && answer.lastEventId && LlmStreamApi.compareIds(event.id, answer.lastEventId) <= 0) return;
  if (event.id) {
    answer.lastEventId = event.id;
    sessionLastEventId = event.id;
  }
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  if (data.task_id !== answer.taskId) return; // an earlier task of the session
  const cancelling = answer.stateName === "cancelling";
  // With STREAM_EVENT_NAMES=false events come unnamed, their name in the data.
  switch (event.type === "message" && data.event ? data.event : event.type) {
    case "queued":
      if (!cancelling) setState(answer, "queued", `queued (${data.queue})`);
      break;
    case "started":
      answer.attempt = data.attempt;
      answer.text = ""; // a new attempt replaces the text of the one before
      render(answer);
      if (cancelling) break;
      if (data.attempt > 1) setState(answer, "retrying", `retrying: attempt ${data.attempt}`);
      else setState(answer, "started", "generating…");
      break;
    case "token":
      if (data.attempt !== answer.attempt) return;
      answer.text += data.text;
      render(answer);
      if (!cancelling) answer.state.textContent = answer.label; // replaces "reconnecting…"
      break;
    case "done": {
      answer.ended = true;
      const usage = data.usage;
      setState(answer, "done", usage ? `done · ${usage.total_tokens} tokens` : "done");
      break;
    }
    case "error":
      answer.ended = true;
      setState(answer, "error", data.error || "failed");
      break;
    case "cancelled":
      answer.ended = true;
      setState(answer, "cancelled", "cancelled");
      break;
  }
  if (answer.ended) renderNow(answer); // the final text is on screen when the state says it ended
}

/** Renders the answer's markdown at most once per frame, however fast tokens come. */
function render(answer) {
  if (answer.renderPending) return;
  answer.renderPending = true;
  requestAnimationFrame(() => {
    if (answer.renderPending) renderNow(answer);
  });
}

function renderNow(answer) {
  answer.renderPending = false;
  const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  answer.body.replaceChildren(Markdown.render(answer.text));
  if (nearBottom) answer.li.scrollIntoView({ block: "end" });
  save(); // text and lastEventId change together in handle(), so what is saved always matches
}

document.getElementById("docs-link").href = LlmStreamApi.url("/docs");
setUpApiKeyField(loadModels);
loadModels();
restore();
