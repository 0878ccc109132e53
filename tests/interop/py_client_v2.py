"""Interop check with the Python MCP SDK 2.x (PyPI `mcp>=2.3`) in its default mode="auto".

The client first POSTs `server/discover` with MCP-Protocol-Version 2026-07-28; our server must
answer with a quick 4xx JSON-RPC error so the client falls back to the initialize handshake.

Usage: MCP_URL=https://host:8443/mcp MCP_TOKEN=... python py_client_v2.py
TLS: verification against $MCP_CA when set; MCP_INSECURE=1 disables it.
Exits non-zero on any failed step, transport exception or SDK warning/error log record.
"""

import asyncio
import json
import logging
import os
import sys
import warnings

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference

URL = os.environ["MCP_URL"]
TOKEN = os.environ["MCP_TOKEN"]
VERIFY = False if os.environ.get("MCP_INSECURE") == "1" else os.environ.get("MCP_CA") or True
TAG = "[py2/auto]"


class Problems(logging.Handler):
    """Collects SDK log records at WARNING and above: each one is a transport fault."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


PROBLEMS = Problems()
logging.getLogger("mcp").addHandler(PROBLEMS)
logging.getLogger("mcp").setLevel(logging.WARNING)
EXCEPTIONS = []
# ping is deprecated for 2026-07-28 connections; this run is a handshake-era one on purpose.
warnings.filterwarnings("ignore", message="ping is removed")


def fail(step, why):
    print(f"FAIL {TAG} {step}: {why}", file=sys.stderr)
    sys.exit(1)


async def on_message(message):
    if isinstance(message, Exception):
        EXCEPTIONS.append(message)


# Every HTTP exchange as (method, JSON-RPC method or "", MCP-Protocol-Version, status), to prove
# that the discover probe was really sent and answered before the fallback.
EXCHANGES = []


def rpc_method(request):
    try:
        return json.loads(request.content or b"{}").get("method", "")
    except (ValueError, AttributeError):
        return ""


async def record(response):
    request = response.request
    EXCHANGES.append((request.method, rpc_method(request),
                      request.headers.get("mcp-protocol-version", ""), response.status_code))


def check_probe():
    """The first exchange is the 2026-07-28 discover probe, refused with a 4xx; initialize follows."""
    posts = [e for e in EXCHANGES if e[0] == "POST"]
    print(TAG, "exchanges:", " ".join(f"{m} {rpc or '-'} {v or '-'} {st}" for m, rpc, v, st in EXCHANGES))
    if len(posts) < 2 or posts[0][1] != "server/discover" or posts[0][2] != "2026-07-28":
        fail("probe", f"the client did not start with a server/discover probe: {posts[:2]}")
    if not 400 <= posts[0][3] < 500 or posts[0][3] in (401, 403):
        fail("probe", f"discover answered {posts[0][3]}; a fallback needs a 4xx other than 401/403")
    if posts[1][1] != "initialize" or posts[1][3] != 200:
        fail("fallback", f"no initialize after the probe: {posts[1]}")


async def main():
    http = httpx2.AsyncClient(
        verify=VERIFY, follow_redirects=True, timeout=httpx2.Timeout(30.0, read=300.0),
        headers={"Authorization": f"Bearer {TOKEN}"}, event_hooks={"response": [record]},
    )
    async with http, Client(streamable_http_client(URL, http_client=http), mode="auto",
                            message_handler=on_message) as c:
        info = c.server_info
        print(TAG, "connected:", info and info.name, info and info.version, "protocol", c.protocol_version)
        if not c.protocol_version.startswith("2025-"):
            fail("fallback", f"expected a 2025 protocol after the discover probe, got {c.protocol_version}")
        if not info or info.name != "task-mcp":
            fail("initialize", f"unexpected server {info}")
        tools = (await c.list_tools()).tools
        names = [t.name for t in tools]
        print(TAG, "tools:", ", ".join(names))
        if not tools:
            fail("tools/list", "no tools listed")
        wanted = os.environ.get("MCP_TOOL") or ("echo" if "echo" in names else None)
        tool = next((t for t in tools if t.name == wanted), None) or next(
            (t for t in tools if t.annotations and t.annotations.read_only_hint), tools[0])
        args = json.loads(os.environ["MCP_TOOL_ARGS"]) if os.environ.get("MCP_TOOL_ARGS") else (
            {"text": "interop"} if tool.name == "echo" else {})
        r = await c.call_tool(tool.name, args)
        print(TAG, f"{tool.name}:", str(r.model_dump(exclude_none=True))[:300])
        structured = r.structured_content or {}
        if tool.name == "echo" and (r.is_error or structured.get("text") != "interop"):
            fail("tools/call", "echo mismatch")
        if "slow" in names:
            seen = []

            async def progress(p, total, message):
                seen.append(p)

            r = await c.call_tool("slow", {"steps": 3, "step_ms": 200}, progress_callback=progress)
            print(TAG, "slow: progress", seen, r.structured_content)
            if len(seen) != 3 or (r.structured_content or {}).get("steps") != 3:
                fail("progress", f"progress {seen}")
        resources = (await c.list_resources()).resources
        templates = (await c.list_resource_templates()).resource_templates
        print(TAG, f"resources: {len(resources)}, templates: {len(templates)}")
        if resources:
            contents = (await c.read_resource(resources[0].uri)).contents
            if not contents:
                fail("resources/read", f"no contents for {resources[0].uri}")
        prompts = (await c.list_prompts()).prompts
        got = await c.get_prompt("proposal", {"request": "Add two-factor login"})
        done = await c.complete(PromptReference(type="ref/prompt", name="archive"), {"name": "slug", "value": "add"})
        print(TAG, "prompts:", [p.name for p in prompts], "messages:", len(got.messages), "slugs:", done.completion.values)
        if "add-interop" not in done.completion.values:
            fail("completion/complete", f"no add-interop in {done.completion.values}")
        if "archive" not in [p.name for p in prompts]:
            fail("prompts/list", "no archive prompt")
        if "change_open" not in got.messages[0].content.text:
            fail("prompts/get", "no workflow text")
        try:
            await c.call_tool("no_such_tool", {})
            fail("unknown tool", "the call succeeded")
        except MCPError as e:
            if e.code != -32602:
                fail("unknown tool", f"expected error -32602, got {e.code}: {e.message}")
        if "slow" in names:
            # A client-side timeout abandons the call: the SDK sends notifications/cancelled, and
            # the server must send nothing more for it (a late message would be logged).
            try:
                await c.call_tool("slow", {"steps": 10, "step_ms": 100}, read_timeout_seconds=0.3)
                fail("cancel", "the abandoned call resolved")
            except MCPError as e:
                print(TAG, "abandoned slow:", e.code, e.message)
            await asyncio.sleep(1.0)
            if ("POST", "notifications/cancelled", "2025-11-25", 202) not in EXCHANGES:
                fail("cancel", "no notifications/cancelled was sent and accepted")
        await c.send_ping()
    check_probe()


try:
    asyncio.run(main())
except SystemExit:
    raise
except BaseException as e:  # noqa: BLE001 - any failure is a failed interop run
    fail("run", repr(e))
if EXCEPTIONS:
    fail("transport", "; ".join(repr(e) for e in EXCEPTIONS))
if PROBLEMS.records:
    fail("transport", " | ".join(PROBLEMS.records))
print(TAG, "OK")
