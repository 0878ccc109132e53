// task-mcp status page.
//
// Loaded as a module under a Content-Security-Policy that forbids inline script and style, so
// everything here builds the DOM with createElement/textContent. The access token lives in
// sessionStorage only. The SSE streams are read with fetch() and parsed here, because
// EventSource cannot send an Authorization header.

// ---------------------------------------------------------------------------------------------
// Stream framing (pure; unit-tested under Node by tests/e2e/parsers.test.mjs)
// ---------------------------------------------------------------------------------------------

/**
 * An incremental parser of the text/event-stream format (WHATWG HTML §9.2.6).
 *
 * Feed it decoded text as it arrives with push(); it returns the frames completed so far:
 * `{type: "comment", text, raw}` for a `:` line (as soon as the line ends) and
 * `{type: "event", event, data, id, raw}` for an event (at the blank line that ends it).
 * Lines may end in LF, CRLF or a lone CR, and a chunk may end anywhere, even between the CR
 * and LF of one line ending.
 */
export class SseParser {
  constructor() {
    this.buf = "";
    this.pendingCR = false;
    this.started = false;
    this.lastId = "";
    this.resetEvent();
  }

  /** Parses the next piece of the stream; returns the frames it completed. */
  push(text) {
    const out = [];
    let s = String(text);
    if (!this.started && s.length > 0) {
      this.started = true;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    if (this.pendingCR) {
      // The previous chunk ended in CR: an LF starting this one belongs to that line ending.
      this.pendingCR = false;
      if (s.startsWith("\n")) s = s.slice(1);
    }
    this.buf += s;
    let start = 0;
    for (;;) {
      const lf = this.buf.indexOf("\n", start);
      const cr = this.buf.indexOf("\r", start);
      if (lf < 0 && cr < 0) break;
      let end;
      let next;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr + 1 < this.buf.length) {
          next = this.buf[cr + 1] === "\n" ? cr + 2 : cr + 1;
        } else {
          next = cr + 1;
          this.pendingCR = true;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      this.line(this.buf.slice(start, end), out);
      start = next;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  resetEvent() {
    this.data = [];
    this.hasData = false;
    this.event = "";
    this.raw = [];
  }

  line(line, out) {
    if (line === "") {
      if (this.hasData) {
        out.push({
          type: "event",
          event: this.event || "message",
          data: this.data.join("\n"),
          id: this.lastId,
          raw: this.raw.join("\n"),
        });
      }
      this.resetEvent();
      return;
    }
    if (line[0] === ":") {
      const text = line.slice(1);
      out.push({ type: "comment", text: text.startsWith(" ") ? text.slice(1) : text, raw: line });
      return;
    }
    this.raw.push(line);
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "event") {
      this.event = value;
    } else if (field === "id") {
      if (!value.includes("\0")) this.lastId = value;
    }
    // `retry` and unknown fields are ignored: this page reconnects on its own schedule.
  }
}

/**
 * An incremental parser of newline-delimited JSON. push() returns the lines completed so far as
 * `{raw, value}` or `{raw, error}`; end() returns a last line that had no newline.
 */
export class NdjsonParser {
  constructor() {
    this.buf = "";
  }

  push(text) {
    this.buf += String(text);
    const out = [];
    let nl;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const frame = NdjsonParser.parseLine(line);
      if (frame) out.push(frame);
    }
    return out;
  }

  end() {
    const rest = this.buf;
    this.buf = "";
    const frame = NdjsonParser.parseLine(rest);
    return frame ? [frame] : [];
  }

  static parseLine(line) {
    const raw = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (raw.trim() === "") return null;
    try {
      return { raw, value: JSON.parse(raw) };
    } catch (e) {
      return { raw, error: `not JSON: ${e.message}` };
    }
  }
}

/** Milliseconds as a short human string: "0.42 ms", "12.3 ms", "340 ms", "1.2 s". */
export function formatMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** Seconds of uptime as "42 s", "5 m 3 s", "2 h 5 m", "3 d 4 h". */
export function formatUptime(sec) {
  if (typeof sec !== "number" || !Number.isFinite(sec) || sec < 0) return "—";
  const s = Math.floor(sec);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} m`;
  if (m > 0) return `${m} m ${s % 60} s`;
  return `${s} s`;
}

/** A count with thin grouping: 1234567 → "1,234,567"; anything else → "—". */
export function formatCount(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}

/** How long ago `when` was (epoch ms, epoch seconds or an ISO string), relative to `now` ms. */
export function formatAgo(when, now) {
  let t;
  if (typeof when === "number") t = when < 1e11 ? when * 1000 : when;
  else if (typeof when === "string") t = Date.parse(when);
  if (t === undefined || !Number.isFinite(t)) return "";
  const sec = Math.max(0, Math.round((now - t) / 1000));
  if (sec < 60) return "just now";
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

/** A human sentence from the server's error envelope `{error:{code,message,hint}}` or a JSON-RPC error. */
export function describeError(body, status) {
  const err = body && typeof body === "object" ? body.error : null;
  if (err && typeof err === "object") {
    const code = err.code !== undefined ? String(err.code) : "";
    const parts = [code && err.message ? `${code}: ${err.message}` : err.message || code];
    if (err.hint) parts.push(err.hint);
    return parts.filter(Boolean).join(" — ");
  }
  return status ? `HTTP ${status}` : "unknown error";
}

/** Example arguments for a tool: known test tools get useful ones, others follow the schema. */
export function sampleArgs(tool) {
  if (!tool) return {};
  if (tool.name === "echo") return { text: "hello from the status page" };
  if (tool.name === "slow") return { steps: 5, step_ms: 400 };
  const schema = tool.inputSchema || {};
  const props = schema.properties || {};
  const out = {};
  for (const key of schema.required || []) {
    const p = props[key] || {};
    if (p.default !== undefined) out[key] = p.default;
    else if (Array.isArray(p.enum) && p.enum.length) out[key] = p.enum[0];
    else if (p.type === "integer" || p.type === "number") out[key] = p.minimum ?? 0;
    else if (p.type === "boolean") out[key] = false;
    else if (p.type === "array") out[key] = [];
    else if (p.type === "object") out[key] = {};
    else out[key] = "";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

const TOKEN_KEY = "task-mcp.token";
const HEALTH_POLL_MS = 5000;
const CHANGES_POLL_MS = 30000;
const STREAM_STALE_MS = 20000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;
const SPARK_POINTS = 120;
const SUMMARY_EVERY_MS = 30000;
const MAX_FRAMES_SHOWN = 500;
const CHANGES_PAGE_SIZE = 24; // changes per "Load more"
const CHANGES_MAX_PAGE_SIZE = 192; // change_list's pageSize limit is 200; a multiple of the above

const state = {
  token: null,
  gen: 0, // bumped on every connect/forget; stale loops see the change and stop
  statsCtrl: null,
  callCtrl: null,
  tools: [],
  rates: [],
  lastStats: null,
  lastSummaryAt: 0,
  checkTimes: new Map(),
  changesPage: 0, // the last page of change_list shown; 0 = none yet
  framesPinned: true, // the frames list follows new frames
  changesTimer: 0,
  auditDenied: false,
  rpcId: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "className") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setText(id, value) {
  const node = $(id);
  if (!node) return;
  const text = String(value);
  if (node.textContent !== text) {
    node.textContent = text;
    node.classList.remove("tick");
    // Restart the short highlight that shows a number just changed.
    void node.offsetWidth;
    node.classList.add("tick");
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function readJson(res) {
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return { error: { message: text.slice(0, 300) } };
  }
}

/** Reads a fetch body as text chunks, calling onText for each, until it ends. */
async function readText(res, onText) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder("utf-8");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    if (text) onText(text);
  }
  const rest = decoder.decode();
  if (rest) onText(rest);
}

function authHeaders(extra) {
  return { Authorization: `Bearer ${state.token}`, ...extra };
}

/** One MCP JSON-RPC request over POST /mcp; returns {status, body}. */
async function rpc(method, params, signal) {
  const res = await fetch("/mcp", {
    method: "POST",
    headers: authHeaders({
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
    }),
    body: JSON.stringify({ jsonrpc: "2.0", id: ++state.rpcId, method, params }),
    cache: "no-store",
    signal,
  });
  const ctype = res.headers.get("content-type") || "";
  if (res.ok && ctype.includes("text/event-stream")) {
    // A server may answer with SSE (e.g. when it streams progress); the response is the message
    // that carries our id.
    let body = null;
    const parser = new SseParser();
    await readText(res, (text) => {
      for (const f of parser.push(text)) {
        if (f.type !== "event") continue;
        try {
          const msg = JSON.parse(f.data);
          if (msg && ("result" in msg || "error" in msg)) body = msg;
        } catch {
          // Not JSON: not ours.
        }
      }
    });
    return { status: res.status, body };
  }
  return { status: res.status, body: await readJson(res) };
}

// --- connection state ------------------------------------------------------------------------

function setConn(kind, text) {
  const pill = $("conn");
  pill.dataset.state = kind;
  pill.textContent = text;
}

function showDashboard(on) {
  $("gate").hidden = on;
  document.body.classList.toggle("authed", on);
  $("forget").hidden = !on;
  for (const node of document.querySelectorAll(".needs-token")) node.hidden = !on;
}

/** Shows a short bold headline and, after it, the server's own words. */
function showGateError(headline, detail) {
  const p = $("gate-error");
  p.replaceChildren(el("strong", { text: headline || "" }), detail ? ` ${detail}` : "");
  p.hidden = !headline;
}

async function connect(token, fromStorage) {
  const gen = ++state.gen;
  state.token = token;
  const button = $("connect");
  button.disabled = true;
  setConn("connecting", "Checking token…");
  showGateError("");
  let res;
  try {
    res = await rpc("tools/list", {});
  } catch (e) {
    if (gen !== state.gen) return;
    button.disabled = false;
    state.token = null;
    setConn("off", "Not connected");
    showGateError("Could not reach the server.", e.message);
    return;
  } finally {
    button.disabled = false;
  }
  if (gen !== state.gen) return;
  if (res.status === 401 || res.status === 403) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    setConn("off", "Not connected");
    showDashboard(false);
    const why = describeError(res.body, res.status);
    showGateError(
      fromStorage ? "The saved token is no longer accepted." : "This token was not accepted.",
      `Check it and try again. The server said: ${why}`,
    );
    $("token").focus();
    return;
  }
  if (res.status !== 200 || !res.body || res.body.error) {
    state.token = null;
    setConn("off", "Not connected");
    showGateError("The server could not list its tools.", describeError(res.body, res.status));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  showDashboard(true);
  setTools(res.body.result?.tools || []);
  runStats(gen);
  loadChanges(false);
  state.auditDenied = false;
  loadAudit();
  clearInterval(state.changesTimer);
  state.changesTimer = setInterval(() => {
    loadChanges(false);
    loadAudit();
  }, CHANGES_POLL_MS);
  $("main").focus();
}

function forget() {
  state.gen++;
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state.statsCtrl?.abort();
  state.callCtrl?.abort();
  clearInterval(state.changesTimer);
  state.rates = [];
  state.lastStats = null;
  for (const id of ["req-rate", "req-total", "req-4xx", "req-5xx", "lat-p50", "lat-p90", "lat-p99",
    "streams-open", "conns-open", "tools-total", "tools-errors", "uptime"]) $(id).textContent = "—";
  $("version").textContent = "";
  $("changes").replaceChildren();
  $("audit-card").hidden = true;
  $("audit").tBodies[0].replaceChildren();
  state.changesPage = 0;
  $("frames").replaceChildren();
  $("result").textContent = "";
  $("tool").replaceChildren();
  setConn("off", "Not connected");
  showDashboard(false);
  showGateError("");
  $("live-summary").textContent = "Token forgotten.";
  $("token").focus();
}

// --- live statistics -------------------------------------------------------------------------

async function runStats(gen) {
  let backoff = RECONNECT_MIN_MS;
  let why = "";
  while (gen === state.gen) {
    const ctrl = new AbortController();
    state.statsCtrl = ctrl;
    let lastByteAt = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastByteAt > STREAM_STALE_MS) ctrl.abort();
    }, 1000);
    try {
      const res = await fetch("/status/stream", {
        headers: authHeaders({ Accept: "text/event-stream" }),
        cache: "no-store",
        signal: ctrl.signal,
      });
      if (gen !== state.gen) return;
      if (res.status === 401 || res.status === 403) {
        const body = await readJson(res);
        clearInterval(watchdog);
        onAuthLost(describeError(body, res.status));
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      setConn("live", "Live");
      $("conn").title = "Statistics stream connected";
      backoff = RECONNECT_MIN_MS;
      const parser = new SseParser();
      await readText(res, (text) => {
        lastByteAt = Date.now();
        if (gen !== state.gen) return;
        for (const f of parser.push(text)) {
          if (f.type === "event" && f.event === "stats") {
            try {
              onStats(JSON.parse(f.data));
            } catch {
              // One bad frame does not stop the stream.
            }
          }
        }
      });
      why = "stream ended";
    } catch (e) {
      // Network error, abort or stale stream: reconnect below unless we were told to stop.
      why = ctrl.signal.aborted ? "stream went quiet" : e.message;
    } finally {
      clearInterval(watchdog);
    }
    if (gen !== state.gen) return;
    setConn("retry", `Reconnecting in ${Math.round(backoff / 1000)} s…`);
    $("conn").title = why;
    await sleep(backoff);
    backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
  }
}

function onAuthLost(why) {
  forget();
  showGateError("The server no longer accepts this token.", `Paste a valid token. The server said: ${why}`);
}

function onStats(s) {
  state.lastStats = s;
  if (s.version) $("version").textContent = `v${s.version} ·`;
  setText("uptime", formatUptime(s.uptimeSeconds));
  const r = s.requests || {};
  const rate = typeof r.ratePerSec === "number" ? r.ratePerSec : null;
  setText("req-rate", rate === null ? "—" : rate < 10 ? rate.toFixed(2) : rate.toFixed(1));
  setText("req-total", formatCount(r.total));
  setText("req-4xx", formatCount(r.errors4xx));
  setText("req-5xx", formatCount(r.errors5xx));
  $("req-5xx").classList.toggle("bad", (r.errors5xx || 0) > 0);

  const lat = s.latencyMs || {};
  const top = Math.max(lat.p99 || 0, lat.p90 || 0, lat.p50 || 0, 1);
  for (const p of ["p50", "p90", "p99"]) {
    setText(`lat-${p}`, formatMs(lat[p]));
    const frac = typeof lat[p] === "number" ? Math.min(1, lat[p] / top) : 0;
    $(`lat-${p}-bar`).style.width = `${(frac * 100).toFixed(1)}%`;
  }

  const st = s.streams || {};
  setText("streams-open", formatCount(st.open));
  setText("conns-open", formatCount(s.connections?.open));
  const tools = s.tools || {};
  setText("tools-total", formatCount(tools.total));
  setText("tools-errors", formatCount(tools.errors));
  const byTransport = Object.entries(st.byTransport || {}).filter(([, n]) => typeof n === "number");
  // Streams outside the MCP transports (this page's own statistics stream) make up the rest.
  const others = typeof st.open === "number" ? st.open - byTransport.reduce((a, [, n]) => a + n, 0) : 0;
  if (others > 0) byTransport.push(["status", others]);
  const chips = byTransport.map(([name, n]) =>
    el("li", { className: n > 0 ? "chip on" : "chip", title: `transport="${name}"` },
      el("span", { text: TRANSPORT_NAMES[name] || name }), el("b", { text: formatCount(n) })));
  $("by-transport").replaceChildren(...chips);

  if (s.health && typeof s.health === "object") renderHealth(s.health);

  if (rate !== null) {
    state.rates.push(rate);
    if (state.rates.length > SPARK_POINTS) state.rates.shift();
    drawSpark();
  }
  const now = Date.now();
  if (now - state.lastSummaryAt > SUMMARY_EVERY_MS) {
    state.lastSummaryAt = now;
    $("live-summary").textContent =
      `Live: ${rate === null ? "unknown" : rate.toFixed(1)} requests per second, ` +
      `p99 latency ${formatMs(lat.p99)}, ${formatCount(st.open)} open streams, ` +
      `health ${s.health?.status || "unknown"}.`;
  }
}

/** Readable names for the `transport` labels of the server's stream metrics. */
const TRANSPORT_NAMES = {
  sse: "MCP SSE",
  mcp_sse: "MCP GET",
  legacy_sse: "/sse",
  status: "this page",
  ndjson: "NDJSON",
};

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function drawSpark() {
  const canvas = $("spark");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  // A faint baseline, so an empty chart still reads as a chart.
  ctx.strokeStyle = cssVar("--border") || "#888";
  ctx.lineWidth = 1;
  ctx.setLineDash([3, 4]);
  ctx.beginPath();
  ctx.moveTo(0, h - 2.5);
  ctx.lineTo(w, h - 2.5);
  ctx.stroke();
  ctx.setLineDash([]);
  const pts = state.rates;
  if (pts.length < 2) return;
  const max = Math.max(...pts, 1);
  const step = w / (SPARK_POINTS - 1);
  const x0 = w - (pts.length - 1) * step;
  const y = (v) => h - 3 - (v / max) * (h - 8);
  ctx.beginPath();
  pts.forEach((v, i) => (i ? ctx.lineTo(x0 + i * step, y(v)) : ctx.moveTo(x0, y(v))));
  const accent = cssVar("--accent") || "#4f8cff";
  ctx.strokeStyle = accent;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.stroke();
  ctx.lineTo(w, h);
  ctx.lineTo(x0, h);
  ctx.closePath();
  ctx.globalAlpha = 0.15;
  ctx.fillStyle = accent;
  ctx.fill();
  ctx.globalAlpha = 1;
}

// --- health ----------------------------------------------------------------------------------

const STATUS_WORDS = { HEALTHY: "Healthy", DEGRADED: "Degraded", UNHEALTHY: "Unhealthy" };

function normStatus(s) {
  const up = String(s || "").toUpperCase();
  if (up === "PASS" || up === "OK" || up === "UP") return "HEALTHY";
  if (up === "WARN") return "DEGRADED";
  if (up === "FAIL" || up === "DOWN") return "UNHEALTHY";
  return STATUS_WORDS[up] ? up : "UNKNOWN";
}

function renderHealth(h) {
  const overall = normStatus(h.status);
  const badge = $("health-status");
  badge.dataset.status = overall;
  const word = STATUS_WORDS[overall] || "Unknown";
  if (badge.textContent !== word) badge.textContent = word;
  const checks = Array.isArray(h.checks) ? h.checks : [];
  const now = Date.now();
  const items = checks.map((c) => {
    const name = String(c.name ?? "check");
    if (typeof c.lastRunMsAgo === "number" || typeof c.durationMs === "number") {
      state.checkTimes.set(name, { at: now - (c.lastRunMsAgo || 0), durationMs: c.durationMs });
    }
    const t = state.checkTimes.get(name);
    const st = normStatus(c.status);
    const meta = [];
    if (t) {
      meta.push(`ran ${formatAgo(t.at, now)}`);
      if (typeof t.durationMs === "number") meta.push(`took ${formatMs(t.durationMs)}`);
    }
    return el("li", { className: "check", dataset: { status: st } },
      el("span", { className: "dot", "aria-hidden": "true" }),
      el("span", { className: "check-name", text: name }),
      el("span", { className: "sr-only", text: `: ${STATUS_WORDS[st] || String(c.status ?? "unknown")}` }),
      el("span", { className: "check-detail", text: c.detail ? String(c.detail) : "" }),
      el("span", { className: "check-meta muted small", text: meta.join(" · ") }));
  });
  $("checks").replaceChildren(...items);
}

async function pollHealth() {
  try {
    const [metrics, ready] = await Promise.all([
      fetch("/health/metrics", { cache: "no-store" }),
      fetch("/health/ready", { cache: "no-store" }),
    ]);
    const body = await readJson(metrics);
    if (body && typeof body === "object" && body.status) renderHealth(body);
    const r = await readJson(ready);
    const isReady = ready.status === 200 && r?.status === "ready";
    const pill = $("ready");
    pill.dataset.state = isReady ? "live" : "bad";
    pill.textContent = isReady ? "Ready" : "Not ready";
    $("health-error").hidden = true;
  } catch (e) {
    const p = $("health-error");
    p.textContent = `Health endpoints unreachable: ${e.message}`;
    p.hidden = false;
    $("health-status").dataset.status = "UNKNOWN";
    $("health-status").textContent = "Unreachable";
  }
}

// --- changes ---------------------------------------------------------------------------------

/**
 * Loads the next page of changes (`more`), or reloads every page shown so far in one call, so
 * the periodic refresh keeps what "Load more" added.
 */
async function loadChanges(more) {
  const gen = state.gen;
  const status = $("changes-status");
  const pages = Math.max(1, Math.min(state.changesPage, CHANGES_MAX_PAGE_SIZE / CHANGES_PAGE_SIZE));
  const args = more
    ? { page: state.changesPage + 1, pageSize: CHANGES_PAGE_SIZE }
    : { page: 1, pageSize: CHANGES_PAGE_SIZE * pages };
  let res;
  try {
    res = await rpc("tools/call", { name: "change_list", arguments: args });
  } catch (e) {
    if (gen === state.gen) status.textContent = `Could not load changes: ${e.message}`;
    return;
  }
  if (gen !== state.gen) return;
  if (res.status === 401) return onAuthLost(describeError(res.body, 401));
  const body = res.body || {};
  if (res.status !== 200 || body.error) {
    status.textContent = `Could not load changes: ${describeError(body, res.status)}`;
    return;
  }
  const result = body.result || {};
  if (result.isError) {
    const sc = result.structuredContent;
    const text = (result.content || []).map((c) => c.text).filter(Boolean).join(" ");
    status.textContent = `change_list failed: ${sc?.error ? describeError(sc) : text || "error"}`;
    return;
  }
  const data = result.structuredContent || {};
  const changes = Array.isArray(data.changes) ? data.changes : [];
  const now = Date.now();
  const items = changes.map((c) => renderChange(c, now));
  if (more) $("changes").append(...items);
  else $("changes").replaceChildren(...items);
  state.changesPage = more ? args.page : pages;
  // How many loads finished: lets a watcher (or test) tell a reload that changed nothing.
  $("changes").dataset.loads = String(Number($("changes").dataset.loads || 0) + 1);
  $("changes-more").hidden = data.hasMore !== true;
  const n = $("changes").children.length;
  status.textContent = n === 0 ? "No active changes." : `${n} active change${n === 1 ? "" : "s"}`;
}

/** Entries shown in the audit card. */
const AUDIT_ROWS = 20;

/**
 * Loads the latest audit entries. Only an admin token may read them: for any other the card stays
 * hidden (the server answers 403), and the page asks no more this session.
 */
async function loadAudit() {
  const gen = state.gen;
  if (state.auditDenied) return;
  let res;
  try {
    res = await fetch(`/security/audit?limit=${AUDIT_ROWS}`, { headers: authHeaders(), cache: "no-store" });
  } catch (e) {
    if (gen === state.gen) $("audit-status").textContent = `Could not load the audit log: ${e.message}`;
    return;
  }
  if (gen !== state.gen) return;
  if (res.status === 403) {
    state.auditDenied = true;
    $("audit-card").hidden = true;
    return;
  }
  const body = await readJson(res);
  if (res.status !== 200) {
    $("audit-status").textContent = `Could not load the audit log: ${describeError(body, res.status)}`;
    return;
  }
  const records = Array.isArray(body.records) ? body.records.slice().reverse() : [];
  const rows = records.map((r) =>
    el("tr", {},
      el("td", {}, String(r.ts ?? "")),
      el("td", {}, String(r.event ?? "")),
      el("td", {}, String(r.identity ?? "—")),
      el("td", {}, [r.tool, r.slug].filter(Boolean).join(" ") || "—"),
      el("td", {}, String(r.outcome ?? ""))));
  $("audit").tBodies[0].replaceChildren(...rows);
  $("audit-card").hidden = false;
  $("audit-status").textContent = records.length === 0
    ? "No audit entries yet."
    : `${records.length} latest of ${body.head?.seq ?? records.length} · chain head ${String(body.head?.hash ?? "").slice(0, 12)}…`;
}

/** One change of change_list (`name`, `status`, `completedTasks`, `totalTasks`, `lastModified`, `locked`). */
function renderChange(c, now) {
  const slug = String(c.name ?? "");
  const title = slug || "untitled";
  const total = Number.isFinite(c.totalTasks) ? Math.max(0, c.totalTasks) : 0;
  const done = Number.isFinite(c.completedTasks) ? Math.min(Math.max(0, c.completedTasks), total) : 0;
  const pct = total > 0 ? Math.round((done / total) * 100) : 0;
  const id = `chg-${slug.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const progress = el("progress", {
    id: `${id}-p`, max: total > 0 ? total : 1, value: done,
    "aria-label": `Tasks done in ${title}`,
    "aria-valuetext": total > 0 ? `${done} of ${total} tasks, ${pct}%` : "no tasks",
  });
  const ago = formatAgo(c.lastModified, now);
  return el("li", { className: "change", dataset: { slug, complete: total > 0 && done === total ? "yes" : "no" } },
    el("div", { className: "change-head" },
      el("span", { className: "change-title", text: title }),
      c.status ? el("span", { className: "tag", text: String(c.status) }) : null),
    el("div", { className: "change-sub muted small" },
      ago ? el("span", { text: `updated ${ago}`, title: String(c.lastModified) }) : null,
      c.locked === true ? el("span", { className: "tag warn", text: "locked", title: "A tool is writing this change right now" }) : null),
    el("div", { className: "change-progress" },
      progress,
      el("span", { className: "mono small", text: total > 0 ? `${done}/${total} · ${pct}%` : "no tasks" })));
}

// --- tool console ----------------------------------------------------------------------------

function setTools(tools) {
  state.tools = Array.isArray(tools) ? tools.filter((t) => t && typeof t.name === "string") : [];
  const select = $("tool");
  const opts = state.tools.map((t) =>
    el("option", { value: t.name, text: t.title && t.title !== t.name ? `${t.name} — ${t.title}` : t.name }));
  select.replaceChildren(...opts);
  onToolChange();
}

function onToolChange() {
  const tool = state.tools.find((t) => t.name === $("tool").value);
  $("tool-desc").textContent = tool?.description || "";
  $("args").value = JSON.stringify(sampleArgs(tool), null, 2);
  $("args-error").hidden = true;
}

function transport() {
  return document.querySelector('input[name="transport"]:checked')?.value || "sse";
}

function addFrame(t0, kind, raw, tone) {
  const list = $("frames");
  const dt = performance.now() - t0;
  const li = el("li", { className: "frame", dataset: { kind, t: Math.round(dt), tone: tone || "" } },
    el("span", { className: "frame-t mono", text: `+${(dt / 1000).toFixed(3)}s` }),
    el("span", { className: "frame-kind", text: kind }),
    el("code", { className: "frame-raw", text: raw }));
  list.append(li);
  while (list.children.length > MAX_FRAMES_SHOWN) list.firstElementChild.remove();
  if (state.framesPinned) list.scrollTop = list.scrollHeight;
}

/** Keeps the frames list scrolled to its newest frame unless the user scrolled up to read. */
function onFramesScroll() {
  const list = $("frames");
  state.framesPinned = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
}

function onResize() {
  drawSpark();
  if (state.framesPinned) $("frames").scrollTop = $("frames").scrollHeight;
}

function showResult(kind, value) {
  const pre = $("result");
  pre.dataset.state = kind;
  pre.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

async function callTool(event) {
  event.preventDefault();
  const name = $("tool").value;
  let input;
  try {
    input = $("args").value.trim() ? JSON.parse($("args").value) : {};
    if (!input || typeof input !== "object" || Array.isArray(input)) throw new Error("must be a JSON object");
  } catch (e) {
    const p = $("args-error");
    p.textContent = `Arguments: ${e.message}`;
    p.hidden = false;
    $("args").focus();
    return;
  }
  $("args-error").hidden = true;
  state.callCtrl?.abort();
  const ctrl = new AbortController();
  state.callCtrl = ctrl;
  const mode = transport();
  $("frames").replaceChildren();
  state.framesPinned = true;
  showResult("running", "");
  $("call").disabled = true;
  $("stop").disabled = false;
  const status = $("call-status");
  status.textContent = `Calling ${name}…`;
  const t0 = performance.now();
  let frames = 0;
  let outcome = null; // "ok" | "error"
  const frame = (kind, raw, tone) => {
    frames++;
    addFrame(t0, kind, raw, tone);
  };
  try {
    let res;
    if (mode === "rpc") {
      res = await fetch("/mcp", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json, text/event-stream" }),
        body: JSON.stringify({
          jsonrpc: "2.0", id: ++state.rpcId, method: "tools/call",
          params: { name, arguments: input, _meta: { progressToken: `page-${state.rpcId}` } },
        }),
        cache: "no-store",
        signal: ctrl.signal,
      });
    } else {
      res = await fetch(mode === "sse" ? "/sse" : "/mcp", {
        method: "POST",
        headers: authHeaders({
          "Content-Type": "application/json",
          Accept: mode === "sse" ? "text/event-stream" : "application/x-ndjson",
        }),
        body: JSON.stringify({ tool: name, input }),
        cache: "no-store",
        signal: ctrl.signal,
      });
    }
    const ctype = (res.headers.get("content-type") || "").toLowerCase();
    status.textContent = `HTTP ${res.status} · ${ctype.split(";")[0] || "no content type"}`;
    if (res.status === 401) {
      const body = await readJson(res);
      showResult("error", body);
      onAuthLost(describeError(body, 401));
      return;
    }
    if (ctype.includes("text/event-stream")) {
      const parser = new SseParser();
      await readText(res, (text) => {
        for (const f of parser.push(text)) {
          if (f.type === "comment") {
            frame("comment", f.raw);
            continue;
          }
          let data = f.data;
          try {
            data = JSON.parse(f.data);
          } catch {
            // Shown raw.
          }
          const isErr = f.event === "error" || (data && typeof data === "object" && (data.error || data.result?.isError));
          frame(f.event, f.raw, isErr ? "error" : f.event === "result" ? "ok" : "");
          if (f.event === "result" || f.event === "error") {
            outcome = f.event === "error" ? "error" : "ok";
            showResult(outcome, f.event === "result" && data && "result" in data ? data.result : data);
          } else if (mode === "rpc" && data && typeof data === "object" && ("result" in data || "error" in data)) {
            outcome = data.error || data.result?.isError ? "error" : "ok";
            showResult(outcome, data.error || data.result?.structuredContent || data.result);
          }
        }
      });
    } else if (ctype.includes("ndjson")) {
      const parser = new NdjsonParser();
      const onLine = (f) => {
        const v = f.value;
        const kind = v && typeof v === "object" && typeof v.type === "string" ? v.type : "line";
        frame(kind, f.raw, f.error || kind === "error" ? "error" : kind === "result" ? "ok" : "");
        if (kind === "result") {
          outcome = "ok";
          showResult("ok", v.result);
        } else if (kind === "error") {
          outcome = "error";
          showResult("error", v.error ?? v);
        }
      };
      await readText(res, (text) => parser.push(text).forEach(onLine));
      parser.end().forEach(onLine);
    } else {
      const text = await res.text();
      frame(`HTTP ${res.status}`, text, res.ok ? "" : "error");
      let body = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Shown raw.
      }
      if (mode === "rpc" && body && typeof body === "object" && ("result" in body || "error" in body)) {
        outcome = body.error || body.result?.isError ? "error" : "ok";
        showResult(outcome, body.error || body.result?.structuredContent || body.result);
      } else {
        outcome = res.ok ? "ok" : "error";
        showResult(outcome, body);
      }
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    if (!outcome) {
      outcome = "error";
      showResult("error", "The stream ended without a result.");
    }
    status.textContent = `${outcome === "ok" ? "Done" : "Failed"} in ${secs} s · ${frames} frame${frames === 1 ? "" : "s"} · HTTP ${res.status}`;
  } catch (e) {
    if (ctrl.signal.aborted) {
      status.textContent = `Stopped after ${((performance.now() - t0) / 1000).toFixed(2)} s`;
      showResult("error", "Stopped.");
    } else {
      status.textContent = `Failed: ${e.message}`;
      showResult("error", String(e.message));
    }
  } finally {
    if (state.callCtrl === ctrl) state.callCtrl = null;
    $("call").disabled = false;
    $("stop").disabled = true;
  }
}

// --- start -----------------------------------------------------------------------------------

function main() {
  $("gate-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      showGateError("Paste a token first.");
      $("token").focus();
      return;
    }
    connect(token, false);
  });
  $("forget").addEventListener("click", forget);
  $("changes-refresh").addEventListener("click", () => loadChanges(false));
  $("changes-more").addEventListener("click", () => loadChanges(true));
  $("tool").addEventListener("change", onToolChange);
  $("console-form").addEventListener("submit", callTool);
  $("stop").addEventListener("click", () => state.callCtrl?.abort());
  $("frames").addEventListener("scroll", onFramesScroll, { passive: true });
  window.addEventListener("resize", onResize);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawSpark);

  showDashboard(false);
  pollHealth();
  setInterval(pollHealth, HEALTH_POLL_MS);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) connect(saved, true);
  else $("token").focus();
}

if (typeof document !== "undefined") main();
