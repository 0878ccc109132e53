#!/usr/bin/env python3
"""Check that every system call task-mcp made is allowed by the unit's SystemCallFilter=.

    check_syscalls.py UNIT STRACE_LOG

UNIT is deploy/systemd/task-mcp.service; STRACE_LOG is `strace -f -o LOG task-mcp serve` output
from a run that served requests and shut down. The unit's filter lines are applied in order as
systemd does: an allow list (first line without `~`), then `~` lines removing groups or calls.
Groups are expanded with `systemd-analyze syscall-filter`, i.e. with the host systemd's own
tables. Under SystemCallErrorNumber=EPERM a refused call fails quietly at run time, which is why
this is checked here rather than discovered in production.
"""

import re
import subprocess
import sys

_cache = {}


def expand(item):
    """The set of system calls a filter item (a call or an @group) stands for."""
    if not item.startswith("@"):
        return {item}
    if item in _cache:
        return _cache[item]
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", item], capture_output=True, text=True, check=True
    ).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        calls |= expand(line)
    _cache[item] = calls
    return calls


def allowed_by(unit_path):
    allowed = None
    with open(unit_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^SystemCallFilter=(.*)$", line.strip())
            if not m:
                continue
            value = m.group(1).strip()
            deny = value.startswith("~")
            items = value.lstrip("~").split()
            calls = set().union(*(expand(i) for i in items)) if items else set()
            if allowed is None:
                if deny:
                    raise SystemExit("a deny-list filter first is not handled here")
                allowed = calls
            elif deny:
                allowed -= calls
            else:
                allowed |= calls
    if allowed is None:
        raise SystemExit("the unit has no SystemCallFilter=")
    return allowed


def used_in(strace_log):
    used = set()
    with open(strace_log, encoding="utf-8", errors="replace") as f:
        for line in f:
            # "1234  name(args..." or "1234  <... name resumed>..."
            m = re.match(r"^\s*(?:\[pid\s+)?\d+\]?\s+(?:<\.\.\.\s+)?([a-z_][a-z0-9_]*)(?:\(|\s+resumed)", line)
            if m:
                used.add(m.group(1))
    return used


def main():
    unit, log = sys.argv[1], sys.argv[2]
    allowed = allowed_by(unit)
    used = used_in(log)
    if not used:
        print("FAIL: no system calls found in the strace log")
        return 1
    refused = sorted(used - allowed)
    print(f"  {len(used)} distinct system calls used; {len(allowed)} allowed by the unit")
    if refused:
        print(f"FAIL: refused by the unit's SystemCallFilter (EPERM at run time): {', '.join(refused)}")
        return 1
    print("  ok   every system call made is allowed by SystemCallFilter=")
    return 0


if __name__ == "__main__":
    sys.exit(main())
