// Interop check with the official TypeScript MCP SDK v1 (@modelcontextprotocol/sdk ^1.32).
//
// Usage: MCP_URL=https://host:8443/mcp MCP_TOKEN=... node ts_client.mjs [http|sse]
//   http (default): Streamable HTTP at $MCP_URL
//   sse:            legacy HTTP+SSE at $MCP_SSE_URL (default: $MCP_URL with /mcp replaced by /sse)
// TLS: run with NODE_EXTRA_CA_CERTS=$MCP_CA (or NODE_TLS_REJECT_UNAUTHORIZED=0 for insecure).
// Optional: MCP_TOOL / MCP_TOOL_ARGS (JSON) pick the tool to call; default `echo` when listed,
// else the first read-only tool with {}. When `slow` is listed it is also called with a progress
// token, which exercises SSE answers and notifications/progress.
// Exit status 0 only when every step succeeded and no transport error was reported.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const mode = process.argv[2] ?? "http";
const base = process.env.MCP_URL;
const token = process.env.MCP_TOKEN;
if (!base || !token) {
  console.error("MCP_URL and MCP_TOKEN are required");
  process.exit(2);
}
const url = new URL(
  mode === "sse" ? (process.env.MCP_SSE_URL ?? base.replace(/\/mcp\/?$/, "/sse")) : base,
);
const requestInit = { headers: { Authorization: `Bearer ${token}` } };
const transport =
  mode === "sse"
    ? new SSEClientTransport(url, { requestInit })
    : new StreamableHTTPClientTransport(url, { requestInit });

const errors = [];
let closing = false;
const fail = (step, e) => {
  console.error(`FAIL [ts/${mode}] ${step}: ${e?.stack ?? e}`);
  process.exit(1);
};
const client = new Client({ name: "task-mcp-interop-ts", version: "0.0.0" });
client.onerror = (e) => {
  // Closing aborts the SSE GET on purpose; that abort is not a transport fault.
  if (closing && e?.name === "AbortError") return;
  if (closing && /aborted/i.test(e?.message ?? "")) return;
  errors.push(e);
  console.error(`transport error: ${e?.message ?? e}`);
};

try {
  await client.connect(transport);
} catch (e) {
  fail("initialize", e);
}
const info = client.getServerVersion();
console.log(`[ts/${mode}] connected: ${info?.name} ${info?.version}, protocol ${transport.protocolVersion ?? "(n/a)"}`);
if (info?.name !== "task-mcp") fail("serverInfo", `unexpected server name ${info?.name}`);
if (!client.getServerCapabilities()?.tools) fail("capabilities", "tools capability missing");

let tools;
try {
  ({ tools } = await client.listTools());
} catch (e) {
  fail("tools/list", e);
}
console.log(`[ts/${mode}] tools: ${tools.map((t) => t.name).join(", ")}`);
if (tools.length === 0) fail("tools/list", "no tools listed");

const wanted = process.env.MCP_TOOL ?? (tools.some((t) => t.name === "echo") ? "echo" : undefined);
const tool = tools.find((t) => t.name === wanted) ?? tools.find((t) => t.annotations?.readOnlyHint) ?? tools[0];
const args = process.env.MCP_TOOL_ARGS ? JSON.parse(process.env.MCP_TOOL_ARGS) : tool.name === "echo" ? { text: "interop" } : {};
try {
  const r = await client.callTool({ name: tool.name, arguments: args });
  console.log(`[ts/${mode}] ${tool.name}: ${JSON.stringify(r).slice(0, 300)}`);
  if (!Array.isArray(r.content)) fail("tools/call", "result without content");
  if (tool.name === "echo" && (r.isError || r.structuredContent?.text !== "interop")) fail("tools/call", "echo mismatch");
} catch (e) {
  fail(`tools/call ${tool.name}`, e);
}

if (tools.some((t) => t.name === "slow")) {
  const seen = [];
  try {
    const r = await client.callTool(
      { name: "slow", arguments: { steps: 3, step_ms: 200 } },
      undefined,
      { onprogress: (p) => seen.push(p.progress) },
    );
    console.log(`[ts/${mode}] slow: progress ${JSON.stringify(seen)}, ${JSON.stringify(r.structuredContent)}`);
    if (seen.length !== 3 || r.structuredContent?.steps !== 3) fail("progress", `progress ${seen}`);
  } catch (e) {
    fail("tools/call slow with progress", e);
  }
}

// Resources: the list, the templates, and one read.
try {
  const { resources } = await client.listResources();
  const { resourceTemplates } = await client.listResourceTemplates();
  console.log(`[ts/${mode}] resources: ${resources.length}, templates: ${resourceTemplates.length}`);
  if (resources.length > 0) {
    const { contents } = await client.readResource({ uri: resources[0].uri });
    if (!Array.isArray(contents) || contents.length === 0) fail("resources/read", `no contents for ${resources[0].uri}`);
  }
} catch (e) {
  fail("resources", e);
}

// Prompts: the list, one prompt, and a slug completion for a prompt argument.
try {
  const { prompts } = await client.listPrompts();
  const got = await client.getPrompt({ name: "proposal", arguments: { request: "Add two-factor login" } });
  const done = await client.complete({ ref: { type: "ref/prompt", name: "archive" }, argument: { name: "slug", value: "" } });
  console.log(`[ts/${mode}] prompts: ${prompts.map((p) => p.name)}, messages: ${got.messages.length}, slugs: ${done.completion.values.length}`);
  if (!prompts.some((p) => p.name === "archive")) fail("prompts/list", "no archive prompt");
  if (!got.messages[0]?.content?.text?.includes("change_open")) fail("prompts/get", "no workflow text");
  if (!done.completion.values.includes("add-interop")) fail("completion/complete", `no add-interop in ${done.completion.values}`);
} catch (e) {
  fail("prompts", e);
}

// An unknown tool is a JSON-RPC error (-32602), not a transport fault.
try {
  await client.callTool({ name: "no_such_tool", arguments: {} });
  fail("unknown tool", "the call succeeded");
} catch (e) {
  if (e?.code !== -32602) fail("unknown tool", `expected error -32602, got ${e?.code}: ${e?.message}`);
}

// Cancellation: abort `slow` after its first progress; the SDK sends notifications/cancelled,
// and the server must not answer the cancelled request afterwards (the SDK would report a
// response for an unknown id as a transport error).
if (tools.some((t) => t.name === "slow")) {
  const ac = new AbortController();
  const t0 = Date.now();
  try {
    await client.callTool({ name: "slow", arguments: { steps: 40, step_ms: 100 } }, undefined,
      { signal: ac.signal, onprogress: () => ac.abort("interop cancels") });
    fail("cancel", "the cancelled call resolved");
  } catch (e) {
    if (ac.signal.aborted !== true) fail("cancel", e);
  }
  // Without a progress token the call is answered on the JSON path; cancel that one too.
  const ac2 = new AbortController();
  const timer = setTimeout(() => ac2.abort("interop cancels"), 300);
  try {
    await client.callTool({ name: "slow", arguments: { steps: 10, step_ms: 100 } }, undefined, { signal: ac2.signal });
    fail("cancel", "the cancelled call (no progress token) resolved");
  } catch (e) {
    if (ac2.signal.aborted !== true) fail("cancel", e);
  } finally {
    clearTimeout(timer);
  }
  // Give a late answer time to arrive (it would show up as a transport error).
  await new Promise((r) => setTimeout(r, 1000));
  console.log(`[ts/${mode}] cancelled two slow calls in ${Date.now() - t0} ms`);
}

try {
  await client.ping();
} catch (e) {
  fail("ping", e);
}
if (errors.length > 0) fail("transport", `${errors.length} transport error(s)`);
closing = true;
try {
  if (transport.terminateSession) await transport.terminateSession();
  await client.close();
} catch (e) {
  fail("close", e);
}
if (errors.length > 0) fail("transport", `${errors.length} transport error(s)`);
console.log(`[ts/${mode}] OK`);
