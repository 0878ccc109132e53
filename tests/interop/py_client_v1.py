"""Interop check with the Python MCP SDK 1.x (PyPI `mcp>=1.24,<2`).

Usage: MCP_URL=https://host:8443/mcp MCP_TOKEN=... python py_client_v1.py [http|sse]
  http (default): Streamable HTTP at $MCP_URL
  sse:            legacy HTTP+SSE at $MCP_SSE_URL (default: $MCP_URL with /mcp replaced by /sse)
TLS: verification against $MCP_CA when set; MCP_INSECURE=1 disables it.
Optional: MCP_TOOL / MCP_TOOL_ARGS (JSON) pick the tool to call (default `echo` when listed).
Exits non-zero on any failed step, transport exception or SDK warning/error log record.
"""

import asyncio
import json
import logging
import os
import re
import sys

import httpx
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.types import PromptReference
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

MODE = sys.argv[1] if len(sys.argv) > 1 else "http"
BASE = os.environ["MCP_URL"]
TOKEN = os.environ["MCP_TOKEN"]
URL = os.environ.get("MCP_SSE_URL", re.sub(r"/mcp/?$", "/sse", BASE)) if MODE == "sse" else BASE
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
VERIFY = False if os.environ.get("MCP_INSECURE") == "1" else os.environ.get("MCP_CA") or True
TAG = f"[py1/{MODE}]"


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


def fail(step, why):
    print(f"FAIL {TAG} {step}: {why}", file=sys.stderr)
    sys.exit(1)


def client_factory(headers=None, timeout=None, auth=None):
    return httpx.AsyncClient(
        headers=headers, timeout=timeout or httpx.Timeout(30, read=300), auth=auth,
        verify=VERIFY, follow_redirects=True,
    )


async def on_message(message):
    if isinstance(message, Exception):
        EXCEPTIONS.append(message)


async def run(read, write):
    async with ClientSession(read, write, message_handler=on_message) as s:
        init = await s.initialize()
        print(TAG, "connected:", init.serverInfo.name, init.serverInfo.version, "protocol", init.protocolVersion)
        if init.serverInfo.name != "task-mcp":
            fail("initialize", f"unexpected server {init.serverInfo.name}")
        tools = (await s.list_tools()).tools
        names = [t.name for t in tools]
        print(TAG, "tools:", ", ".join(names))
        if not tools:
            fail("tools/list", "no tools listed")
        wanted = os.environ.get("MCP_TOOL") or ("echo" if "echo" in names else None)
        tool = next((t for t in tools if t.name == wanted), None) or next(
            (t for t in tools if t.annotations and t.annotations.readOnlyHint), tools[0])
        args = json.loads(os.environ["MCP_TOOL_ARGS"]) if os.environ.get("MCP_TOOL_ARGS") else (
            {"text": "interop"} if tool.name == "echo" else {})
        r = await s.call_tool(tool.name, args)
        print(TAG, f"{tool.name}:", str(r.model_dump(exclude_none=True))[:300])
        if tool.name == "echo" and (r.isError or (r.structuredContent or {}).get("text") != "interop"):
            fail("tools/call", "echo mismatch")
        if "slow" in names:
            seen = []

            async def progress(p, total, message):
                seen.append(p)

            r = await s.call_tool("slow", {"steps": 3, "step_ms": 200}, progress_callback=progress)
            print(TAG, "slow: progress", seen, r.structuredContent)
            if len(seen) != 3 or (r.structuredContent or {}).get("steps") != 3:
                fail("progress", f"progress {seen}")
        resources = (await s.list_resources()).resources
        templates = (await s.list_resource_templates()).resourceTemplates
        print(TAG, f"resources: {len(resources)}, templates: {len(templates)}")
        if resources:
            contents = (await s.read_resource(resources[0].uri)).contents
            if not contents:
                fail("resources/read", f"no contents for {resources[0].uri}")
        prompts = (await s.list_prompts()).prompts
        got = await s.get_prompt("proposal", {"request": "Add two-factor login"})
        done = await s.complete(PromptReference(type="ref/prompt", name="archive"), {"name": "slug", "value": ""})
        print(TAG, "prompts:", [p.name for p in prompts], "messages:", len(got.messages), "slugs:", done.completion.values)
        if "archive" not in [p.name for p in prompts]:
            fail("prompts/list", "no archive prompt")
        if "change_open" not in got.messages[0].content.text:
            fail("prompts/get", "no workflow text")
        if "add-interop" not in done.completion.values:
            fail("completion/complete", f"no add-interop in {done.completion.values}")
        try:
            await s.call_tool("no_such_tool", {})
            fail("unknown tool", "the call succeeded")
        except McpError as e:
            if e.error.code != -32602:
                fail("unknown tool", f"expected error -32602, got {e.error.code}: {e.error.message}")
        await s.send_ping()


async def main():
    if MODE == "sse":
        async with sse_client(URL, headers=HEADERS, httpx_client_factory=client_factory) as (r, w):
            await run(r, w)
    else:
        async with client_factory(HEADERS) as http:
            async with streamable_http_client(URL, http_client=http) as (r, w, _session_id):
                await run(r, w)


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
