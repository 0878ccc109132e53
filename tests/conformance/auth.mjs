// Preloaded into the conformance suite (node --import): its clients connect without credentials,
// and task-mcp requires a bearer token on every MCP request. This adds the token the script
// passes in TASK_MCP_TOKEN to every fetch that has none, and changes nothing else.
const token = process.env.TASK_MCP_TOKEN;
if (!token) throw new Error("auth.mjs: TASK_MCP_TOKEN is not set");
const plainFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  return plainFetch(input, { ...init, headers });
};
