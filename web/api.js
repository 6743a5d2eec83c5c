// What both pages share: the API address (config.js), the optional API key (kept in localStorage),
// JSON requests, and a Server-Sent Events reader over fetch. fetch rather than EventSource because
// EventSource can send neither an Authorization header nor a Last-Event-ID of our choosing.
"use strict";

const LlmStreamApi = (() => {
  const base = String(window.LLMSTREAM_API_BASE || "").replace(/\/+$/, "");
  const keyName = "llmstream.api_key";

  function url(path) {
    return base + path;
  }

  function apiKey() {
    try {
      return localStorage.getItem(keyName) || "";
    } catch {
      return "";
    }
  }

  function setApiKey(value) {
    try {
      if (value) localStorage.setItem(keyName, value);
      else localStorage.removeItem(keyName);
    } catch {
      // Storage refused (private mode): the key lasts for this page only.
    }
  }

  function headers(extra) {
    const result = Object.assign({ Accept: "application/json" }, extra);
    const key = apiKey();
    if (key) result.Authorization = "Bearer " + key;
    return result;
  }

  /** A readable sentence from a problem-details (or OpenAI error) body. */
  function problemText(status, body) {
    if (body && typeof body === "object") {
      if (body.errors && typeof body.errors === "object") {
        const first = Object.entries(body.errors)[0];
        if (first) return `${first[0]}: ${[].concat(first[1]).join(" ")}`;
      }
      if (body.detail) return String(body.detail);
      if (body.error && body.error.message) return String(body.error.message);
      if (body.title) return String(body.title);
    }
    return status === 0 ? "the gateway cannot be reached" : `HTTP ${status}`;
  }

  /** Sends a JSON request; resolves to { ok, status, body } and never throws for HTTP or network errors. */
  async function request(method, path, payload, extraHeaders) {
    const init = { method, headers: headers(extraHeaders), cache: "no-store" };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(url(path), init);
    } catch (error) {
      return { ok: false, status: 0, body: null, error };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      // empty or not JSON
    }
    return { ok: response.ok, status: response.status, body };
  }

  /** Stream ids are "milliseconds-sequence"; compares two of them (null counts as the start). */
  function compareIds(a, b) {
    const parse = (id) => (id ? id.split("-").map(Number) : [0, 0]);
    const [am, as] = parse(a);
    const [bm, bs] = parse(b);
    return am !== bm ? am - bm : as - bs;
  }

  class HttpError extends Error {
    constructor(status, body) {
      super(problemText(status, body));
      this.status = status;
    }
  }

  /**
   * Reads one SSE response from path, calling onEvent({ id, type, data }) for each event. Sends Last-Event-ID
   * when given. Resolves when the server ends the response; rejects on a network error or an HTTP error
   * (HttpError). onRetry(ms) receives the server's retry: interval.
   */
  async function readEvents(path, { lastEventId, signal, onEvent, onRetry }) {
    const extra = { Accept: "text/event-stream" };
    if (lastEventId) extra["Last-Event-ID"] = lastEventId;
    const response = await fetch(url(path), { headers: headers(extra), signal, cache: "no-store" });
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        // not JSON
      }
      throw new HttpError(response.status, body);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let type = "";
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop(); // an incomplete last line waits for more
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) onEvent({ id, type: type || "message", data: data.join("\n") });
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) id = text;
        else if (field === "retry" && /^\d+$/.test(text) && onRetry) onRetry(Number(text));
      }
    }
  }

  return { base, url, apiKey, setApiKey, request, readEvents, compareIds, problemText, HttpError };
})();

/** Shared page chrome: the API key field in the header's settings panel. */
function setUpApiKeyField(onChange) {
  const field = document.getElementById("api-key");
  const form = document.getElementById("settings");
  if (!field || !form) return;
  field.value = LlmStreamApi.apiKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    LlmStreamApi.setApiKey(field.value.trim());
    form.closest("details")?.removeAttribute("open");
    if (onChange) onChange();
  });
}
