// The live view: /api/state once, then /api/events (Server-Sent Events). Text from the run only ever goes
// in through textContent (never innerHTML), so a task's output cannot become markup.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path, extra) => {
  const q = new URLSearchParams(extra || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return path + (s ? "?" + s : "");
};
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let job = {}, tasks = new Map(), logs = new Map(), seq = 0, chosen = null, dirty = true, layoutDirty = true;
let clockSkew = 0, ranThisRun = new Set();
const LOG_KEEP = 500;

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const now = () => Date.now() / 1000 - clockSkew;
const secs = (s) => (s < 60 ? s.toFixed(s < 10 ? 2 : 1) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s");
const LABEL = { INIT: "waiting", PENDING: "ready", UP_TO_DATE: "up to date" };
// a task an incremental run (or a --watch rerun) found up to date: completed, not run again
const shown = (t) => (t.state === "COMPLETED" && t.attempts.length && t.attempts[t.attempts.length - 1].up_to_date ? "UP_TO_DATE" : t.state);
const label = (s) => LABEL[s] || s.toLowerCase();
const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");

function setJob(e) {
  job = e;
  tasks = new Map(e.tasks.map((t) => [t.name, t]));
  if (e.rerun || !e.resync) { logs = new Map(); ranThisRun = new Set(); }
  for (const t of e.tasks) if (t.log) logs.set(t.name, t.log.slice());
  layoutDirty = dirty = true;
  if (e.rerun) {
    const what = e.changed && e.changed.length ? "changed: " + e.changed.join(", ") : "rerun";
    $("banner").textContent = "run " + e.run + " started " + clock(e.start) + " · " + what;
  }
}

function apply(e) {
  if (e.seq && e.seq <= seq) return;  // had already (a reconnection resumes from the last one it got)
  if (e.seq) seq = e.seq;
  const t = e.task && typeof e.task === "string" ? tasks.get(e.task) || addTask({ name: e.task }) : null;
  switch (e.type) {
    case "job": setJob(e); break;
    case "gap": return load();
    case "task": addTask(e.task); break;
    case "state":
      t.state = e.state;
      if (e.state === "RUNNING") { t.running_since = e.time; ranThisRun.add(t.name); }
      break;
    case "result":
      delete t.running_since;
      t.attempts.push(e);
      break;
    case "log": {
      const kept = logs.get(e.task) || [];
      kept.push(...e.lines);
      if (kept.length > LOG_KEEP) kept.splice(0, kept.length - LOG_KEEP);
      logs.set(e.task, kept);
      if (e.task === chosen) appendLog(e.lines);
      return;
    }
    case "end": Object.assign(job, { exitcode: e.exitcode, end: e.end, summary: e.summary }); break;
  }
  dirty = true;
}

function addTask(t) {
  const full = Object.assign({ state: "PENDING", dependencies: [], attempts: [], parameters: {} }, t);
  tasks.set(full.name, full);
  layoutDirty = true;
  return full;
}

// -- the graph: tasks in columns by depth (a task sits right of everything it depends on)
let nodes = new Map();
function layout() {
  const depth = new Map();
  const level = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    const t = tasks.get(name);
    if (!t || seen.has(name)) return 0;
    seen.add(name);
    const d = 1 + Math.max(-1, ...t.dependencies.map((x) => level(x, seen)));
    depth.set(name, d);
    return d;
  };
  const cols = [];
  for (const name of tasks.keys()) (cols[level(name, new Set())] ||= []).push(name);
  const many = tasks.size > 200;
  const W = many ? 110 : 140, H = many ? 16 : 26, GX = many ? 20 : 28, GY = many ? 4 : 10;
  const pos = new Map();
  cols.forEach((col, c) => col.forEach((n, r) => pos.set(n, [c * (W + GX) + 4, r * (H + GY) + 4])));
  const svg = $("graph");
  svg.replaceChildren();
  svg.setAttribute("width", cols.length * (W + GX) + 10);
  svg.setAttribute("height", Math.max(1, ...cols.map((c) => c.length)) * (H + GY) + 10);
  if (tasks.size <= 2000) {
    for (const [name, t] of tasks) for (const d of t.dependencies) {
      if (!pos.has(d)) continue;
      const [x1, y1] = pos.get(d), [x2, y2] = pos.get(name);
      svg.appendChild(el("svg:line", { x1: x1 + W, y1: y1 + H / 2, x2, y2: y2 + H / 2, stroke: "#b0bec5" }));
    }
  }
  nodes = new Map();
  for (const [name, [x, y]] of pos) {
    const g = el("svg:g", { class: "node", "data-task": name });
    g.appendChild(el("svg:rect", { x, y, width: W, height: H, rx: 4 }));
    g.appendChild(el("svg:text", { x: x + 6, y: y + H / 2 + 4 }, name.length > W / 6.6 ? name.slice(0, W / 6.6 - 1) + "…" : name));
    g.appendChild(el("svg:title", {}, name));
    g.addEventListener("click", () => choose(name));
    svg.appendChild(g);
    nodes.set(name, g);
  }
  layoutDirty = false;
}

// -- the timeline: each task's attempts as bars, a running one growing
function timeline() {
  const ran = (t) => t.attempts.filter((a) => a.start && !a.up_to_date);  // up to date: it did not run
  const rows = [...tasks.values()].filter((t) => ran(t).length || t.running_since);
  const start = job.start || now(), end = job.end || now();
  const span = Math.max(end - start, 1e-3), L = 150, W = 520, R = 16;
  const svg = $("timeline");
  svg.replaceChildren();
  svg.setAttribute("width", L + W + 30);
  svg.setAttribute("height", rows.length * R + 24);
  for (let k = 0; k <= 4; k++) {
    const x = L + (W * k) / 4;
    svg.appendChild(el("svg:line", { x1: x, y1: 0, x2: x, y2: rows.length * R + 6, stroke: "#eceff1" }));
    svg.appendChild(el("svg:text", { x, y: rows.length * R + 18, "text-anchor": "middle" }, secs((span * k) / 4)));
  }
  rows.forEach((t, i) => {
    const y = i * R + 2;
    svg.appendChild(el("svg:text", { x: L - 6, y: y + 11, "text-anchor": "end" }, t.name.slice(0, 24)));
    const bars = ran(t).map((a) => [a.start, a.end || a.start, a.state, a.attempt]);
    if (t.running_since) bars.push([t.running_since, now(), "RUNNING", t.attempts.length + 1]);
    for (const [s, e, state, n] of bars) {
      const x = L + (W * (s - start)) / span, w = Math.max(2, (W * (e - s)) / span);
      const bar = el("svg:rect", { class: "bar s-" + state, x, y, width: w, height: R - 4, rx: 2, "data-task": t.name, "data-attempt": n });
      bar.appendChild(el("svg:title", {}, t.name + " attempt " + n + ": " + state + " " + secs(e - s)));
      svg.appendChild(bar);
    }
  });
}

// -- the chosen task: parameters (secrets come masked), attempts, errors, output as it is written
function choose(name) {
  chosen = name;
  $("log").hidden = false;
  $("log").replaceChildren();
  appendLog(logs.get(name) || []);
  dirty = true;
  render();
}
function appendLog(lines) {
  if (!lines.length) return;
  const box = $("log"), atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.appendChild(document.createTextNode(lines.join("\n") + "\n"));
  while (box.childNodes.length > LOG_KEEP) box.removeChild(box.firstChild);
  if (atEnd) box.scrollTop = box.scrollHeight;
}
function details() {
  const t = chosen && tasks.get(chosen), info = $("info");
  if (!t) return;
  $("chosen").textContent = t.name + " · " + label(shown(t));
  info.replaceChildren();
  const meta = [["class", t.class || ""], ["depends on", t.dependencies.join(", ") || "nothing"]];
  if (t.tags && t.tags.length) meta.push(["tags", t.tags.join(", ")]);
  const table = el("table");
  for (const [k, v] of meta) { const tr = el("tr"); tr.append(el("th", {}, k), el("td", {}, v)); table.appendChild(tr); }
  info.append(table, el("div", { class: "muted" }, "parameters"), el("pre", { id: "params" }, JSON.stringify(t.parameters || {}, null, 2)));
  const att = el("table", { id: "attempts" });
  const head = el("tr");
  for (const h of ["attempt", "state", "started", "took", "exit", "error"]) head.appendChild(el("th", {}, h));
  att.appendChild(head);
  const rows = t.attempts.map((a) => [a.attempt, a.up_to_date ? "up to date" : a.state, clock(a.start), a.start && a.end ? secs(a.end - a.start) : "", a.exitcode ?? "", a.error || ""]);
  if (t.running_since) rows.push([t.attempts.length + 1, "RUNNING", clock(t.running_since), secs(now() - t.running_since), "", ""]);
  for (const r of rows) { const tr = el("tr"); for (const c of r) tr.appendChild(el("td", {}, String(c))); att.appendChild(tr); }
  info.append(el("div", { class: "muted" }, "attempts"), att, el("div", { class: "muted" }, "output"));
}

function render() {
  if (layoutDirty) layout();
  const counts = {};
  for (const [name, t] of tasks) {
    const s = shown(t);
    counts[s] = (counts[s] || 0) + 1;
    const g = nodes.get(name);
    if (g && (g.dataset.state !== t.state || g.dataset.shown !== s)) {
      g.dataset.state = t.state;
      g.dataset.shown = s;
      g.setAttribute("class", "node s-" + s + (name === chosen ? " chosen" : ""));
    } else if (g) g.classList.toggle("chosen", name === chosen);
  }
  const box = $("counts");
  box.replaceChildren();
  for (const [s, n] of Object.entries(counts)) box.appendChild(el("span", { class: "s-" + s, "data-state": s }, n + " " + label(s)));
  $("job").textContent = (job.name || "") + (job.run > 1 ? " · run " + job.run : "");
  document.title = "flowmancer · " + (job.name || "");
  const ended = job.exitcode !== undefined && job.exitcode !== null;
  document.body.dataset.status = ended ? "ended" : "running";
  $("status").textContent = ended ? "ended · exit code " + job.exitcode : "running";
  $("status").className = ended ? (job.exitcode === 0 ? "ended-ok" : "ended-failed") : "";
  if (job.start) $("elapsed").textContent = secs((job.end || now()) - job.start) + (ended ? "" : " so far");
  if (ended && job.rerun) {
    const ran = [...ranThisRun], rest = tasks.size - ran.length;
    $("banner").textContent = "run " + job.run + " · changed: " + (job.changed || []).join(", ") + " · reran " + (ran.join(", ") || "nothing") + (rest ? " · " + rest + " up to date" : "");
  }
  timeline();
  details();
  dirty = false;
}

// at most 5 frames a second, whatever the rate of events; the clock ticks while the run goes on
setInterval(() => { if (dirty || (job.start && !job.end)) render(); }, 200);

let source = null;
async function load() {
  if (source) source.close();
  const state = await (await fetch(withToken("api/state"))).json();
  clockSkew = Date.now() / 1000 - state.now;
  setJob(Object.assign({}, state.job, { tasks: state.tasks, rerun: false }));
  seq = state.seq;
  render();
  source = new EventSource(withToken("api/events", { since: seq }));
  source.onmessage = (m) => apply(JSON.parse(m.data));
  source.onerror = () => { if (job.exitcode === undefined || job.exitcode === null) $("status").textContent = "reconnecting…"; };
}
load();
