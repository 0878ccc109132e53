-- One MCP request per call for wrk: the JSON-RPC body comes from $BODY, a bearer token from
-- $TOKEN (when set). benches/wrk-tails.sh checks one answer before it measures.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local token = os.getenv("TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- One machine-readable line: requests/s, p99 in ms, failed requests (non-2xx and socket errors).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-summary %.1f %.3f %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    e.status + e.connect + e.read + e.write + e.timeout))
end
