// Unit tests of the stream parsers and formatters inside src/page/app.js (run under Node).
//
// app.js is a browser module that starts itself only when a `document` exists; it is copied to a
// temporary .mjs file so Node loads it as a module whatever the nearest package.json says.

import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { PAGE_DIR } from "./lib.mjs";

const tmp = mkdtempSync(path.join(os.tmpdir(), "page-app-"));
copyFileSync(path.join(PAGE_DIR, "app.js"), path.join(tmp, "app.mjs"));
const app = await import(pathToFileURL(path.join(tmp, "app.mjs")).href);

/** Feeds `chunks` to a fresh parser and returns every frame. */
function sse(chunks) {
  const p = new app.SseParser();
  return chunks.flatMap((c) => p.push(c));
}

/** Every way of cutting `text` into two chunks gives the same frames as the whole text. */
function assertSplitInvariant(text) {
  const whole = sse([text]);
  for (let i = 0; i <= text.length; i++) {
    assert.deepEqual(sse([text.slice(0, i), text.slice(i)]), whole, `cut at ${i}`);
  }
  assert.deepEqual(sse([...text]), whole, "one character at a time");
  return whole;
}

test("an SSE event ends at a blank line and carries its event name and data", () => {
  const frames = sse(["event: stats\ndata: {\"a\":1}\n\n"]);
  assert.deepEqual(frames, [{ type: "event", event: "stats", data: '{"a":1}', id: "", raw: 'event: stats\ndata: {"a":1}' }]);
});

test("an SSE event without an event field is a message, and nothing is dispatched before the blank line", () => {
  const p = new app.SseParser();
  assert.deepEqual(p.push("data: x\n"), []);
  assert.deepEqual(p.push("\n").map((f) => [f.event, f.data]), [["message", "x"]]);
});

test("multi-line data is joined with newlines and one leading space is stripped", () => {
  const [f] = sse(["data:  two spaces\ndata:none\ndata\ndata: last\n\n"]);
  assert.equal(f.data, " two spaces\nnone\n\nlast");
});

test("comments are reported as they end, and do not end or break an event", () => {
  const frames = sse([": heartbeat\nevent: result\n:keepalive\ndata: 1\n\n"]);
  assert.deepEqual(frames.map((f) => f.type === "comment" ? `:${f.text}` : `${f.event}=${f.data}`), [":heartbeat", ":keepalive", "result=1"]);
});

test("CRLF, lone CR and LF line endings all work, even mixed", () => {
  const frames = sse(["event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n"]);
  assert.deepEqual(frames.map((f) => `${f.event}=${f.data}`), ["a=1", "b=2", "c=3"]);
});

test("events split across chunks at every position parse the same, including between CR and LF", () => {
  const frames = assertSplitInvariant(": hi\r\nevent: stats\r\ndata: {\"x\":[1,2]}\r\ndata: more\r\n\r\nevent: end\rdata:\r\r");
  assert.deepEqual(frames.map((f) => f.type === "comment" ? ":" : `${f.event}=${JSON.stringify(f.data)}`), [":", 'stats="{\\"x\\":[1,2]}\\nmore"', 'end=""']);
});

test("an event with no data lines is dropped, and unknown fields and retry are ignored", () => {
  const frames = sse(["event: nothing\n\nretry: 10\nfoo: bar\ndata: ok\n\n"]);
  assert.deepEqual(frames.map((f) => `${f.event}=${f.data}`), ["message=ok"]);
});

test("a leading byte order mark is skipped and ids persist to later events", () => {
  const frames = sse(["\ufeffid: 7\ndata: a\n\ndata: b\n\n"]);
  assert.deepEqual(frames.map((f) => [f.id, f.data]), [["7", "a"], ["7", "b"]]);
});

test("NDJSON lines split across chunks come out whole, CRLF and blank lines tolerated", () => {
  const p = new app.NdjsonParser();
  const out = [...p.push('{"type":"st'), ...p.push('art","ts":1}\r\n\n{"type":"result","result":{"t'), ...p.push('ext":"hi"}}\n{"type":"end"}')];
  assert.deepEqual(out.map((f) => f.value.type), ["start", "result"]);
  assert.equal(out[1].value.result.text, "hi");
  assert.deepEqual(p.end().map((f) => f.value.type), ["end"]);
  assert.deepEqual(p.end(), []);
});

test("a bad NDJSON line is reported with its raw text, not thrown", () => {
  const [f] = new app.NdjsonParser().push("{nope\n");
  assert.equal(f.raw, "{nope");
  assert.match(f.error, /not JSON/);
});

test("formatters give short readable values and a dash for missing ones", () => {
  assert.equal(app.formatMs(0.423), "0.42 ms");
  assert.equal(app.formatMs(12.34), "12.3 ms");
  assert.equal(app.formatMs(340.4), "340 ms");
  assert.equal(app.formatMs(1234), "1.23 s");
  assert.equal(app.formatMs(undefined), "—");
  assert.equal(app.formatUptime(42), "42 s");
  assert.equal(app.formatUptime(303), "5 m 3 s");
  assert.equal(app.formatUptime(7500), "2 h 5 m");
  assert.equal(app.formatUptime(3 * 86400 + 4 * 3600), "3 d 4 h");
  assert.equal(app.formatCount(1234567), "1,234,567");
  assert.equal(app.formatCount(null), "—");
  const now = Date.parse("2025-01-02T00:00:00Z");
  assert.equal(app.formatAgo("2025-01-01T23:59:30Z", now), "just now");
  assert.equal(app.formatAgo(now - 5 * 60000, now), "5 min ago");
  assert.equal(app.formatAgo((now - 3 * 3600000) / 1000, now), "3 h ago");
  assert.equal(app.formatAgo("not a date", now), "");
});

test("error envelopes become one sentence with code, message and hint", () => {
  const body = { apiVersion: "1.0.0", error: { code: "UNAUTHORIZED", message: "Bad token.", hint: "Send a Bearer token." } };
  assert.equal(app.describeError(body, 401), "UNAUTHORIZED: Bad token. — Send a Bearer token.");
  assert.equal(app.describeError({ error: { code: -32601, message: "Method not found" } }), "-32601: Method not found");
  assert.equal(app.describeError(null, 502), "HTTP 502");
});

test("sample arguments fill required schema fields by type", () => {
  const tool = { name: "x", inputSchema: { type: "object", required: ["slug", "n", "t", "k"], properties: { slug: { type: "string" }, n: { type: "integer", minimum: 3 }, t: { enum: ["a", "b"] }, k: { type: "boolean" } } } };
  assert.deepEqual(app.sampleArgs(tool), { slug: "", n: 3, t: "a", k: false });
  assert.deepEqual(app.sampleArgs({ name: "slow" }), { steps: 5, step_ms: 400 });
});
