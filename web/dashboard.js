// The live dashboard: polls GET /stats and shows queues, workers, tasks and rate limits, with a chart of the
// last minutes drawn on a canvas. Every field may be missing or null (older gateways, or a broker that cannot
// tell): it is shown as "—". All text is set with textContent.
"use strict";

const pollMs = Math.max(500, Number(new URLSearchParams(location.search).get("interval")) || 2000);
const historyLength = 150; // samples kept for the chart (5 minutes at the default interval)
const history = [];
const dash = "—";

document.getElementById("docs-link").href = LlmStreamApi.url("/docs");
setUpApiKeyField(() => poll());

function present(value) {
  return value !== null && value !== undefined && !(typeof value === "number" && Number.isNaN(value));
}

function number(value, digits = 0) {
  if (!present(value) || typeof value !== "number") return dash;
  return value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function seconds(value) {
  if (!present(value) || typeof value !== "number") return dash;
  if (value < 90) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (value < 5400) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function text(value) {
  return present(value) && value !== "" ? String(value) : dash;
}

/** Sums a field over items; null when no item has it. */
function sum(items, field) {
  let total = null;
  for (const item of items) {
    if (typeof item?.[field] === "number") total = (total ?? 0) + item[field];
  }
  return total;
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function fillTable(id, rows, build, emptyText) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(tr, emptyText, "empty");
    td.colSpan = document.querySelectorAll(`#${id} thead th`).length;
    body.append(tr);
    return;
  }
  for (const item of rows) {
    const tr = document.createElement("tr");
    build(tr, item);
    body.append(tr);
  }
}

function show(stats) {
  const queues = Array.isArray(stats.queues) ? stats.queues : [];
  const workers = Array.isArray(stats.workers) ? stats.workers : null;
  const chatQueues = queues.filter((q) => !q?.work || q.work === "chat");
  const tasks = stats.tasks && typeof stats.tasks === "object" ? stats.tasks : null;

  const waiting = sum(queues, "waiting");
  const inFlight = workers ? sum(workers, "in_flight") : sum(queues, "in_flight");
  const perQueueDead = sum(queues, "dead_lettered");
  const deadLetters = perQueueDead ?? (typeof stats.dead_lettered === "number" ? stats.dead_lettered : null);
  const perSecond = tasks?.last_minute?.per_second;

  document.getElementById("broker").textContent = text(stats.broker);
  document.getElementById("waiting").textContent = number(waiting);
  document.getElementById("in-flight").textContent = number(inFlight);
  document.getElementById("dead-letters").textContent = number(deadLetters);
  document.getElementById("workers-count").textContent = workers ? number(workers.length) : dash;
  document.getElementById("throughput").textContent = number(perSecond, 2);
  document.getElementById("rate-limited").textContent = number(stats.rate_limited_tasks);

  fillTable("queues", queues, (tr, q) => {
    tr.dataset.queue = text(q.name);
    cell(tr, text(q.name), "name");
    cell(tr, text(q.work ?? (chatQueues.includes(q) ? "chat" : null)), "work");
    cell(tr, text(q.priority), "priority");
    cell(tr, number(q.waiting), "waiting");
    cell(tr, number(q.in_flight), "in-flight");
    cell(tr, number(q.dead_lettered), "dead-lettered");
    cell(tr, seconds(q.oldest_waiting_seconds), "oldest");
  }, "this broker reports no queue depths");

  fillTable("workers", workers ?? [], (tr, w) => {
    tr.dataset.worker = text(w.id);
    cell(tr, text(w.id), "name");
    cell(tr, text(w.service));
    cell(tr, text(w.host));
    cell(tr, number(w.pid));
    cell(tr, number(w.in_flight), "in-flight");
    cell(tr, number(w.concurrency));
    const beat = cell(tr, seconds(w.seconds_since_heartbeat) + (present(w.seconds_since_heartbeat) ? " ago" : ""));
    if (typeof w.seconds_since_heartbeat === "number" && w.seconds_since_heartbeat > 30) beat.classList.add("stale");
  }, workers ? "no worker has reported" : "this gateway does not report workers");

  const taskRows = [];
  if (tasks) {
    taskRows.push({ label: "since start", ...tasks });
    if (tasks.last_minute && typeof tasks.last_minute === "object") taskRows.push({ label: "last minute", ...tasks.last_minute });
  }
  fillTable("tasks", taskRows, (tr, t) => {
    cell(tr, t.label, "name");
    cell(tr, number(t.completed), "completed");
    cell(tr, number(t.failed), "failed");
    cell(tr, number(t.cancelled), "cancelled");
  }, "this gateway does not count tasks");

  const limits = Array.isArray(stats.rate_limits) ? stats.rate_limits : [];
  fillTable("rate-limits", limits, (tr, r) => {
    cell(tr, text(r.scope), "name");
    cell(tr, text(r.kind));
    cell(tr, r.limit_per_minute === 0 ? "no limit" : number(r.limit_per_minute));
    const level = cell(tr, "", "level");
    const meter = document.createElement("meter");
    meter.min = 0;
    if (typeof r.capacity === "number" && r.capacity > 0) {
      meter.max = r.capacity;
      meter.value = Math.max(0, typeof r.available === "number" ? r.available : 0);
      meter.low = r.capacity * 0.2;
      meter.optimum = r.capacity;
      level.append(meter, " ");
    }
    level.append(present(r.available) || present(r.capacity) ? `${number(r.available, 1)} of ${number(r.capacity, 1)}` : dash);
    cell(tr, r.paused_until ? new Date(r.paused_until).toLocaleTimeString() : dash);
  }, "no rate limits reported");

  const pauses = stats.provider_pauses && typeof stats.provider_pauses === "object" ? Object.entries(stats.provider_pauses) : [];
  document.getElementById("pauses").textContent = pauses.length
    ? "Provider paused (429): " + pauses.map(([model, until]) => `${model} until ${new Date(until).toLocaleTimeString()}`).join(", ")
    : "";

  history.push({ at: Date.now(), waiting, inFlight, perSecond: typeof perSecond === "number" ? perSecond : null });
  if (history.length > historyLength) history.shift();
  draw();
}

function draw() {
  const canvas = document.getElementById("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const pad = { left: 40, right: 44, top: 10, bottom: 22 };
  const plotW = Math.max(10, width - pad.left - pad.right);
  const plotH = Math.max(10, height - pad.top - pad.bottom);
  const niceMax = (values) => {
    const max = Math.max(0, ...values.filter((v) => typeof v === "number"));
    if (max <= 0) return 1;
    const step = 10 ** Math.floor(Math.log10(max));
    return Math.ceil(max / step) * step;
  };
  // Counts are whole numbers: a multiple of 4 keeps the four grid steps on whole numbers too.
  const countMax = Math.max(4, Math.ceil(niceMax(history.flatMap((h) => [h.waiting, h.inFlight])) / 4) * 4);
  const rateMax = niceMax(history.map((h) => h.perSecond));
  const style = getComputedStyle(document.body);
  const colour = (name, fallback) => style.getPropertyValue(name).trim() || fallback;

  g.font = "11px system-ui, sans-serif";
  g.strokeStyle = colour("--grid", "#ddd");
  g.fillStyle = colour("--muted", "#667");
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + plotH - (plotH * i) / 4;
    g.beginPath();
    g.moveTo(pad.left, y + 0.5);
    g.lineTo(pad.left + plotW, y + 0.5);
    g.stroke();
    g.textAlign = "right";
    g.fillText(number((countMax * i) / 4), pad.left - 6, y + 4);
    g.textAlign = "left";
    g.fillText(number((rateMax * i) / 4, 2), pad.left + plotW + 6, y + 4);
  }
  const span = (historyLength - 1) * pollMs;
  g.textAlign = "left";
  g.fillText(`${Math.round(span / 60000)} min ago`, pad.left, height - 6);
  g.textAlign = "right";
  g.fillText("now", pad.left + plotW, height - 6);

  const now = history.length ? history[history.length - 1].at : Date.now();
  const x = (at) => pad.left + plotW - ((now - at) / span) * plotW;
  const line = (field, max, stroke) => {
    g.strokeStyle = stroke;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    let lastPoint = null;
    for (const sample of history) {
      const value = sample[field];
      if (typeof value !== "number") {
        drawing = false;
        continue;
      }
      const px = x(sample.at);
      const py = pad.top + plotH - (Math.min(value, max) / max) * plotH;
      if (drawing) g.lineTo(px, py);
      else g.moveTo(px, py);
      drawing = true;
      lastPoint = [px, py];
    }
    g.stroke();
    if (lastPoint) {
      // A dot on the newest value, so that a series shows from its first sample on.
      g.fillStyle = stroke;
      g.beginPath();
      g.arc(lastPoint[0], lastPoint[1], 3, 0, 2 * Math.PI);
      g.fill();
    }
  };
  line("waiting", countMax, colour("--waiting", "#2f6fed"));
  line("inFlight", countMax, colour("--in-flight", "#e08a00"));
  line("perSecond", rateMax, colour("--throughput", "#1a9c5b"));
}

let timer = null;
async function poll() {
  clearTimeout(timer);
  const status = document.getElementById("status");
  const result = await LlmStreamApi.request("GET", "/stats");
  if (result.ok && result.body && typeof result.body === "object") {
    show(result.body);
    status.classList.remove("error");
    status.textContent = `updated ${new Date().toLocaleTimeString()} · every ${pollMs / 1000} s`;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } else {
    status.classList.add("error");
    status.textContent = `cannot read /stats: ${LlmStreamApi.problemText(result.status, result.body)}`;
  }
  timer = setTimeout(poll, pollMs);
}

window.addEventListener("resize", draw);
poll();
