#!/usr/bin/env python3
"""Drives the stdio command of a `task-mcp connect claude-desktop --json` recipe (the mcp-remote
bridge Claude Desktop runs) the way Claude Desktop would: initialize, tools/list, a tool call.

Usage: task-mcp connect claude-desktop --json --show-token | mcp_remote_stdio.py
Exit 0 when every answer arrived and the tool call succeeded.
"""
import json, os, subprocess, sys, select, time
cfg = json.load(sys.stdin)["config"]["mcpServers"]["task-mcp"]
env = dict(os.environ); env.update(cfg["env"])
p = subprocess.Popen([cfg["command"]] + cfg["args"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
def send(m): p.stdin.write(json.dumps(m) + "\n"); p.stdin.flush()
def recv(i, limit=60):
    end = time.time() + limit
    while time.time() < end:
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            line = p.stdout.readline()
            if not line: break
            m = json.loads(line)
            if m.get("id") == i: return m
    p.kill(); print(p.stderr.read(), file=sys.stderr); sys.exit(f"no answer to {i}")
send({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ci","version":"1"}}})
info = recv(1)["result"]["serverInfo"]
print("initialize:", info)
send({"jsonrpc":"2.0","method":"notifications/initialized"})
send({"jsonrpc":"2.0","id":2,"method":"tools/list"}); print(len(recv(2)["result"]["tools"]), "tools")
send({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"change_list","arguments":{}}}); r = recv(3)["result"]
if r.get("isError"):
    sys.exit(f"change_list failed: {r}")
print("tools/call change_list: ok")
p.stdin.close(); p.terminate()
