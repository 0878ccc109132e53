// A development stand-in for task-mcp that follows the status page's server contract.
//
// It serves the page straight from src/page/ with the CSP read from src/page/mod.rs, so the page
// can be built and tested before (and independently of) the real server. The CI e2e runs against
// the real server; this file is only for development (`node mock-server.mjs`, or
// `.ci/page-e2e.sh --mock`).
//
// Env: MOCK_PORT (default 0 = any free port), MOCK_TOKEN (default "dev-token").
// Prints `listening <url>` on stdout once ready.

import http from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";

import { PAGE_DIR, readCsp } from "./lib.mjs";

const pageDir = PAGE_DIR;
const TOKEN = process.env.MOCK_TOKEN || "dev-token";
const started = Date.now();

const CSP = readCsp();

const ASSETS = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/static/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/static/app.css": ["app.css", "text/css; charset=utf-8"],
};

// --- statistics -------------------------------------------------------------------------------
const stats = { total: 0, e4: 0, e5: 0, durations: [], times: [], open: { sse: 0, mcp_sse: 0, legacy_sse: 0, ndjson: 0 }, conns: 0, toolsActive: 0 };

function pct(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function snapshot() {
  const now = Date.now();
  stats.times = stats.times.filter((t) => now - t < 10000);
  const sorted = [...stats.durations].sort((a, b) => a - b);
  const open = Object.values(stats.open).reduce((a, b) => a + b, 0);
  return {
    ts: now,
    uptimeSeconds: Math.floor((now - started) / 1000),
    version: "0.1.0-mock",
    requests: { total: stats.total, ratePerSec: stats.times.length / 10, errors4xx: stats.e4, errors5xx: stats.e5 },
    latencyMs: { p50: pct(sorted, 50), p90: pct(sorted, 90), p99: pct(sorted, 99) },
    streams: { open, byTransport: { ...stats.open } },
    connections: { open: stats.conns },
    tools: { active: stats.toolsActive, total: 3 },
    health: { status: "DEGRADED", checks: CHECKS.map(({ name, status, detail }) => ({ name, status, detail })) },
  };
}

const CHECKS = [
  { name: "openspec_root", status: "HEALTHY", detail: "openspec/ readable, 3 changes" },
  { name: "disk_space", status: "HEALTHY", detail: "41.2 GiB free" },
  { name: "tls_certificate", status: "DEGRADED", detail: "self-signed, expires in 29 days" },
  { name: "file_descriptors", status: "HEALTHY", detail: "37 of 1024 in use" },
];

const CHANGES = [
  { slug: "add-status-page", title: "Add a live status page", completedTasks: 7, totalTasks: 9, status: "active", lastModified: new Date(Date.now() - 240000).toISOString() },
  { slug: "harden-sse-framing", title: "Harden SSE framing", completedTasks: 2, totalTasks: 6, status: "active", lastModified: Date.now() - 3 * 3600 * 1000 },
  { slug: "rate-limit-per-token", title: "Per-token rate limits", completedTasks: 4, totalTasks: 4, status: "active", lastModified: new Date(Date.now() - 2 * 86400000).toISOString(), owner: "extra field" },
];

const TOOLS = [
  { name: "change_list", title: "List changes", description: "List the active OpenSpec changes with their task progress.", inputSchema: { type: "object", properties: { cursor: { type: "string" } } } },
  { name: "echo", title: "Echo", description: "Echo the text back (a test tool).", inputSchema: { type: "object", properties: { text: { type: "string" } } } },
  { name: "slow", title: "Slow", description: "Wait in steps, reporting progress (a test tool).", inputSchema: { type: "object", properties: { steps: { type: "integer" }, step_ms: { type: "integer" }, fail: { type: "boolean" } } } },
];

// --- helpers ----------------------------------------------------------------------------------
function send(res, status, body, headers = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(text);
}

function unauthorized(res) {
  send(res, 401, {
    apiVersion: "1.0.0",
    error: { code: "UNAUTHORIZED", message: "Missing or invalid bearer token.", hint: "Send Authorization: Bearer <token> with one of the server's AUTH_TOKENS." },
    requestId: Math.random().toString(16).slice(2),
    timestamp: new Date().toISOString(),
  }, { "WWW-Authenticate": 'Bearer realm="task-mcp"' });
}

function authed(req) {
  return req.headers.authorization === `Bearer ${TOKEN}`;
}

async function bodyJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a tool; `onTick` is called after each step of `slow`. Throws {code,message,hint}. */
async function runTool(name, input, onTick) {
  const n = String(name).replace(/^test\./, "");
  stats.toolsActive++;
  try {
    if (n === "echo") return { text: String(input?.text ?? "") };
    if (n === "slow") {
      const steps = Math.min(50, Number(input?.steps ?? 3));
      const stepMs = Math.min(5000, Number(input?.step_ms ?? 200));
      for (let i = 1; i <= steps; i++) {
        await sleep(stepMs);
        onTick?.(i, steps);
      }
      if (input?.fail) throw { code: "ESLOWFAIL", message: "failed on request", hint: "Drop `fail`." };
      return { steps, cancelled: false };
    }
    if (n === "change_list") return { changes: CHANGES };
    throw { code: "ETOOL", message: `unknown tool ${name}`, hint: "Call tools/list." };
  } finally {
    stats.toolsActive--;
  }
}

// Writes SSE text in two pieces with a pause, so clients meet events split across chunks.
function writeSplit(res, text) {
  const cut = Math.max(1, Math.floor(text.length / 2));
  res.write(text.slice(0, cut));
  setTimeout(() => res.writable && res.write(text.slice(cut)), 5);
}

// --- routes -----------------------------------------------------------------------------------
async function route(req, res) {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  if (req.method === "GET" && ASSETS[p]) {
    const [file, type] = ASSETS[p];
    res.writeHead(200, {
      "Content-Type": type,
      "Content-Security-Policy": CSP,
      "X-Content-Type-Options": "nosniff",
      "Cache-Control": "no-store",
      "Referrer-Policy": "no-referrer",
    });
    return res.end(readFileSync(path.join(pageDir, file)));
  }
  if (req.method === "GET" && p === "/health/live") return send(res, 200, { status: "alive" });
  if (req.method === "GET" && p === "/health/ready") return send(res, 200, { status: "ready", checks: {} });
  if (req.method === "GET" && p === "/health/metrics") {
    return send(res, 200, {
      status: "DEGRADED",
      checks: CHECKS.map((c, i) => ({ ...c, lastRunMsAgo: 1000 + i * 1500, durationMs: 0.4 + i * 1.3 })),
    });
  }
  if (p === "/status/stream" && req.method === "GET") {
    if (!authed(req)) return unauthorized(res);
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
    stats.open.sse++;
    const tick = () => writeSplit(res, `event: stats\r\ndata: ${JSON.stringify(snapshot())}\r\n\r\n`);
    tick();
    const t1 = setInterval(tick, 1000);
    const t2 = setInterval(() => res.write(": keepalive\n\n"), 400);
    req.on("close", () => {
      clearInterval(t1);
      clearInterval(t2);
      stats.open.sse--;
    });
    return;
  }
  if (p === "/sse" && req.method === "POST") {
    if (!authed(req)) return unauthorized(res);
    const body = await bodyJson(req);
    if (!body || typeof body.tool !== "string") {
      return send(res, 400, { apiVersion: "1.0.0", error: { code: "INVALID_REQUEST", message: "Expected {tool, input}.", hint: "" } });
    }
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
    stats.open.sse++;
    const hb = setInterval(() => res.write(": heartbeat\n\n"), 250);
    try {
      const result = await runTool(body.tool, body.input);
      writeSplit(res, `event: result\ndata: ${JSON.stringify({ apiVersion: "1.0.0", tool: body.tool, result })}\n\n`);
    } catch (e) {
      res.write(`event: error\ndata: ${JSON.stringify({ apiVersion: "1.0.0", error: e })}\n\n`);
    } finally {
      clearInterval(hb);
      stats.open.sse--;
      setTimeout(() => res.end(), 20);
    }
    return;
  }
  if (p === "/mcp" && req.method === "POST") {
    if (!authed(req)) return unauthorized(res);
    const body = await bodyJson(req);
    if (body && body.jsonrpc === "2.0") return rpc(body, res);
    if (!body || typeof body.tool !== "string") {
      return send(res, 400, { apiVersion: "1.0.0", error: { code: "INVALID_REQUEST", message: "Expected JSON-RPC or {tool, input}.", hint: "" } });
    }
    res.writeHead(200, { "Content-Type": "application/x-ndjson", "Cache-Control": "no-store" });
    stats.open.ndjson++;
    res.write(JSON.stringify({ type: "start", ts: Date.now() }) + "\n");
    try {
      const result = await runTool(body.tool, body.input);
      res.write(JSON.stringify({ type: "result", result }) + "\n");
    } catch (e) {
      res.write(JSON.stringify({ type: "error", error: e }) + "\n");
    }
    res.end(JSON.stringify({ type: "end", ts: Date.now() }) + "\n");
    stats.open.ndjson--;
    return;
  }
  send(res, 404, { apiVersion: "1.0.0", error: { code: "NOT_FOUND", message: `No route for ${req.method} ${p}`, hint: "" } });
}

async function rpc(msg, res) {
  const reply = (payload) => send(res, 200, { jsonrpc: "2.0", id: msg.id, ...payload });
  if (msg.method === "tools/list") return reply({ result: { tools: TOOLS } });
  if (msg.method === "tools/call") {
    const { name, arguments: args, _meta } = msg.params || {};
    const token = _meta?.progressToken;
    if (token !== undefined && name === "slow") {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
      stats.open.mcp_sse++;
      const result = await runTool(name, args, (i, n) =>
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress: i, total: n } })}\n\n`));
      res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: msg.id, result: { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result, isError: false } })}\n\n`);
      stats.open.mcp_sse--;
      return;
    }
    try {
      const result = await runTool(name, args);
      return reply({ result: { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result, isError: false } });
    } catch (e) {
      return reply({ result: { content: [{ type: "text", text: e.message }], structuredContent: { error: e }, isError: true } });
    }
  }
  return reply({ error: { code: -32601, message: `Method not found: ${msg.method}` } });
}

const server = http.createServer((req, res) => {
  const t0 = performance.now();
  stats.total++;
  stats.times.push(Date.now());
  res.on("finish", () => {
    stats.durations.push(performance.now() - t0);
    if (stats.durations.length > 1000) stats.durations.shift();
    if (res.statusCode >= 500) stats.e5++;
    else if (res.statusCode >= 400) stats.e4++;
  });
  route(req, res).catch((e) => {
    if (!res.headersSent) send(res, 500, { apiVersion: "1.0.0", error: { code: "INTERNAL", message: String(e) } });
  });
});
server.on("connection", (sock) => {
  stats.conns++;
  sock.on("close", () => stats.conns--);
});
server.listen(Number(process.env.MOCK_PORT || 0), "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
