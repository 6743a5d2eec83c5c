// LlmStream chat page: POST /chat, then follow the session's SSE stream. Text is inserted with
// textContent only, so nothing the user or the model writes can inject HTML.
const api = window.LLMSTREAM_API || "";
const conversation = document.getElementById("conversation");
const form = document.getElementById("chat");
let sessionId = null;

function bubble(role, text) {
  const li = document.createElement("li");
  li.className = role;
  const body = document.createElement("span");
  body.textContent = text;
  const state = document.createElement("span");
  state.className = "state";
  li.append(body, state);
  conversation.append(li);
  li.scrollIntoView({ block: "end" });
  return { li, body, state };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = form.message.value.trim();
  if (!message) return;
  const payload = { message, priority: Number(form.priority.value) };
  if (form.model.value.trim()) payload.model = form.model.value.trim();
  if (sessionId) payload.session_id = sessionId;
  bubble("user", message);
  form.message.value = "";
  const answer = bubble("assistant", "");
  answer.state.textContent = "sending…";

  const response = await fetch(`${api}/chat`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  const body = await response.json();
  if (!response.ok) {
    answer.li.classList.add("error");
    answer.state.textContent = body.detail || body.title || `HTTP ${response.status}`;
    return;
  }
  sessionId = body.session_id;
  follow(body, answer);
});

function follow(accepted, answer) {
  // EventSource resumes by itself with Last-Event-ID after a dropped connection.
  const source = new EventSource(`${api}${accepted.stream_url}`);
  const mine = (e) => JSON.parse(e.data).task_id === accepted.task_id;
  answer.state.textContent = "queued";
  source.addEventListener("started", (e) => {
    if (!mine(e)) return;
    const data = JSON.parse(e.data);
    answer.body.textContent = ""; // a new attempt replaces the previous attempt's text
    answer.state.textContent = data.attempt > 1 ? `retrying (attempt ${data.attempt})` : "generating…";
  });
  source.addEventListener("token", (e) => {
    if (mine(e)) answer.body.textContent += JSON.parse(e.data).text;
  });
  source.addEventListener("done", (e) => {
    if (!mine(e)) return;
    const usage = JSON.parse(e.data).usage;
    answer.state.textContent = usage ? `done · ${usage.total_tokens} tokens` : "done";
    source.close();
  });
  for (const type of ["error", "cancelled"]) {
    source.addEventListener(type, (e) => {
      if (!e.data || !mine(e)) return;
      answer.li.classList.add("error");
      answer.state.textContent = type === "error" ? JSON.parse(e.data).error : "cancelled";
      source.close();
    });
  }
}
