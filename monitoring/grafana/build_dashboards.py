#!/usr/bin/env python3
"""Writes the six task-mcp Grafana dashboards to dashboards/*.json.

The JSON files are committed so Grafana provisioning can read them as they are; this script is
their source. .ci/monitoring-check.sh runs it into a scratch directory and fails if the committed
files differ, then checks that every query reads only metrics the server exports.

Usage: build_dashboards.py [OUTPUT_DIR]   (default: dashboards/ beside this script)
"""

import json
import sys
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Series of the server, narrowed to the instances picked in the dashboard's variable.
SEL = 'job="task-mcp",instance=~"$instance"'
RATE = "$__rate_interval"


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["id"] = self.next_id
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
        self.place(panel, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0
        return panel


def targets(queries):
    """[(expr, legend)] -> Grafana targets with refIds A, B, ..."""
    return [
        {
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + i),
        }
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(title, queries, unit="short", description="", stack=False, thresholds=None):
    custom = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    defaults = {"unit": unit, "custom": custom}
    if thresholds:
        defaults["thresholds"] = thresholds
        custom["thresholdsStyle"] = {"mode": "line"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        },
    }


def stat(title, expr, unit="short", description="", steps=None, legend=""):
    steps = steps or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets([(expr, legend)]),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def table(title, queries, unit="short", description=""):
    panel = {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [dict(t, format="table", instant=True) for t in targets(queries)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True},
        "transformations": [{"id": "merge", "options": {}}],
    }
    return panel


def alert_list(title, description):
    """Grafana's alert list: the alerts of Prometheus' rules (data-source managed) for this job."""
    return {
        "type": "alertlist",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "options": {
            "viewMode": "list",
            "groupMode": "default",
            "groupBy": [],
            "maxItems": 20,
            "sortOrder": 3,
            "dashboardAlerts": False,
            "alertName": "",
            "alertInstanceLabelFilter": '{job="task-mcp"}',
            "datasource": "${datasource}",
            "folder": None,
            "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False,
                            "error": True},
        },
    }


def steps(*pairs):
    """steps("green", None, "orange", 0.5, "red", 1) -> threshold steps."""
    it = iter(pairs)
    return [{"color": c, "value": v} for c, v in zip(it, it)]


def quantile(q, metric, by, extra=""):
    by_clause = ", ".join(["le"] + by)
    return (
        f"histogram_quantile({q}, sum by ({by_clause}) "
        f"(rate({metric}_bucket{{{SEL}{extra}}}[{RATE}])))"
    )


def variables(extra=()):
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            },
            {
                "name": "instance",
                "label": "Instance",
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": 'label_values(build_info{job="task-mcp"}, instance)', "refId": "instance"},
                "definition": 'label_values(build_info{job="task-mcp"}, instance)',
                "includeAll": True,
                "multi": True,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
                "refresh": 2,
                "hide": 0,
            },
            *extra,
        ]
    }


def dashboard(uid, title, description, build, extra_vars=()):
    layout = Layout()
    panels = []

    def add(panel, w=12, h=8):
        panels.append(layout.place(panel, w, h))

    def row(title):
        panels.append(layout.row(title))

    build(add, row)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["task-mcp"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": variables(extra_vars),
        "annotations": {
            "list": [
                {
                    "name": "Restarts",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "orange",
                    "expr": f"changes(process_start_time_seconds{{{SEL}}}[2m]) > 0",
                    "titleFormat": "task-mcp restarted",
                    "textFormat": "{{instance}}",
                }
            ]
        },
        "links": [
            {
                "title": "task-mcp dashboards",
                "type": "dashboards",
                "tags": ["task-mcp"],
                "asDropdown": True,
            }
        ],
        "panels": panels,
    }


def overview(add, row):
    row("Service")
    add(stat("Targets up", 'sum(up{job="task-mcp"})', description="Scrape targets answering.",
             steps=steps("red", None, "green", 1)), 4, 4)
    add(stat("Requests / s", f"sum(rate(http_server_requests_total{{{SEL}}}[{RATE}]))", "reqps"), 4, 4)
    add(stat("5xx ratio",
             f'sum(rate(http_server_requests_total{{{SEL},status=~"5.."}}[{RATE}])) / sum(rate(http_server_requests_total{{{SEL}}}[{RATE}]))',
             "percentunit", "Availability SLI; target below 0.1%.",
             steps("green", None, "orange", 0.001, "red", 0.01)), 4, 4)
    add(stat("p95 latency", quantile(0.95, "http_server_request_duration_seconds", []), "s",
             "Target below 200 ms.", steps("green", None, "orange", 0.2, "red", 0.3)), 4, 4)
    add(stat("Active streams", f"sum(streaming_active_connections{{{SEL}}})"), 4, 4)
    add(stat("Worst health check", f"min(health_check_status{{{SEL}}})", "none",
             "1 healthy, 0.5 degraded, 0 unhealthy.", steps("red", None, "orange", 0.5, "green", 1)), 4, 4)
    row("SLOs (30 days)")
    add(stat("Availability, 30 days",
             f'1 - sum(increase(http_server_requests_total{{job="task-mcp",status=~"5.."}}[30d])) / sum(increase(http_server_requests_total{{job="task-mcp"}}[30d]))',
             "percentunit", "Target 99.9%.", steps("red", None, "green", 0.999)), 6, 4)
    add(stat("Availability error budget left",
             f'1 - (sum(increase(http_server_requests_total{{job="task-mcp",status=~"5.."}}[30d])) / sum(increase(http_server_requests_total{{job="task-mcp"}}[30d]))) / 0.001',
             "percentunit", "Share of the 30-day 0.1% budget not yet spent.",
             steps("red", None, "orange", 0.25, "green", 0.5)), 6, 4)
    add(stat("Requests under 200 ms, 30 days",
             f'sum(increase(http_server_request_duration_seconds_bucket{{job="task-mcp",le="0.2"}}[30d])) / sum(increase(http_server_request_duration_seconds_count{{job="task-mcp"}}[30d]))',
             "percentunit", "Target at least 95%.", steps("red", None, "green", 0.95)), 6, 4)
    add(stat("Tool success, 30 days",
             f'1 - sum(increase(tool_executions_total{{job="task-mcp",status="server_error"}}[30d])) / sum(increase(tool_executions_total{{job="task-mcp"}}[30d]))',
             "percentunit", "Target 99.9%. Only server faults count; callers' mistakes are client errors.",
             steps("red", None, "green", 0.999)), 6, 4)
    add(alert_list("Firing and pending alerts",
                   "The Prometheus alerts of this job, firing or pending (monitoring/RUNBOOKS.md)."), 24, 6)
    add(timeseries("Error budget burn rate (availability)", [
        ("task_mcp:http_errors:ratio_rate1h / 0.001", "1h"),
        ("task_mcp:http_errors:ratio_rate6h / 0.001", "6h"),
        ("task_mcp:http_errors:ratio_rate1d / 0.001", "1d"),
    ], "none", "1 spends the budget exactly over 30 days; alerts at 14.4 (1h), 6 (6h), 3 (1d).",
        thresholds={"mode": "absolute", "steps": steps("green", None, "orange", 6, "red", 14.4)}))
    add(timeseries("Error budget burn rate (latency, p95 < 200 ms)", [
        ("task_mcp:http_slower_than_200ms:ratio_rate1h / 0.05", "1h"),
        ("task_mcp:http_slower_than_200ms:ratio_rate6h / 0.05", "6h"),
        ("task_mcp:http_slower_than_200ms:ratio_rate1d / 0.05", "1d"),
    ], "none", "Share of requests slower than 200 ms, over its 5% budget."))
    row("Traffic")
    add(timeseries("Requests by status class", [
        (f'sum(rate(http_server_requests_total{{{SEL},status=~"{c}.."}}[{RATE}]))', f"{c}xx")
        for c in "12345"
    ], "reqps", stack=True))
    add(timeseries("Request latency", [
        (quantile(0.5, "http_server_request_duration_seconds", []), "p50"),
        (quantile(0.95, "http_server_request_duration_seconds", []), "p95"),
        (quantile(0.99, "http_server_request_duration_seconds", []), "p99"),
    ], "s", thresholds={"mode": "absolute", "steps": steps("green", None, "orange", 0.2, "red", 0.5)}))
    add(timeseries("In flight", [
        (f"sum(http_server_active_requests{{{SEL}}})", "requests"),
        (f"sum(tool_active_executions{{{SEL}}})", "tool executions"),
        (f"sum(http_server_connections_active{{{SEL}}})", "connections"),
    ]))
    add(timeseries("Resources", [
        (f"process_resident_memory_bytes{{{SEL}}} / process_memory_limit_bytes{{{SEL}}}", "memory {{instance}}"),
        (f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "CPU cores {{instance}}"),
    ], "percentunit"))


def api(add, row):
    row("Requests")
    add(timeseries("Requests by route", [
        (f"sum by (route) (rate(http_server_requests_total{{{SEL},route=~\"$route\"}}[{RATE}]))", "{{route}}"),
    ], "reqps", stack=True))
    add(timeseries("Requests by method", [
        (f"sum by (method) (rate(http_server_requests_total{{{SEL},route=~\"$route\"}}[{RATE}]))", "{{method}}"),
    ], "reqps", stack=True))
    add(timeseries("Status codes", [
        (f"sum by (status) (rate(http_server_requests_total{{{SEL},route=~\"$route\"}}[{RATE}]))", "{{status}}"),
    ], "reqps", stack=True))
    add(timeseries("Error ratio by class", [
        (f'sum(rate(http_server_requests_total{{{SEL},route=~"$route",status=~"4.."}}[{RATE}])) / sum(rate(http_server_requests_total{{{SEL},route=~"$route"}}[{RATE}]))', "4xx"),
        (f'sum(rate(http_server_requests_total{{{SEL},route=~"$route",status=~"5.."}}[{RATE}])) / sum(rate(http_server_requests_total{{{SEL},route=~"$route"}}[{RATE}]))', "5xx"),
    ], "percentunit", "4xx are client errors and spend no budget; 5xx do.",
        thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.01)}))
    add(timeseries("Response size p95 by route", [
        (f"histogram_quantile(0.95, sum by (le, route) (rate(http_server_response_body_bytes_bucket{{{SEL},route=~\"$route\"}}[{RATE}])))", "{{route}}"),
    ], "bytes", "Body bytes sent; a stream counts when it ends, with everything it sent."))
    row("MCP methods")
    add(timeseries("MCP requests by method", [
        (f"sum by (method) (rate(mcp_requests_total{{{SEL}}}[{RATE}]))", "{{method}}"),
    ], "reqps", "JSON-RPC requests by method, both transports; tools/call counted when its tool ends.",
        stack=True))
    add(timeseries("MCP errors by method and outcome", [
        (f'sum by (method, outcome) (rate(mcp_requests_total{{{SEL},outcome!="ok"}}[{RATE}]))', "{{method}} {{outcome}}"),
    ], "reqps", "client_error: the caller's mistake (bad params, unknown method); server_error: ours."))
    add(timeseries("MCP p95 by method", [
        (quantile(0.95, "mcp_request_duration_seconds", ["method"]), "{{method}}"),
    ], "s"), 24, 8)
    row("Latency")
    add(timeseries("p95 latency by route", [
        (quantile(0.95, "http_server_request_duration_seconds", ["route"], ',route=~"$route"'), "{{route}}"),
    ], "s", thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.2)}))
    add(timeseries("p99 latency by route", [
        (quantile(0.99, "http_server_request_duration_seconds", ["route"], ',route=~"$route"'), "{{route}}"),
    ], "s", thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.5)}))
    add(timeseries("Requests slower than the SLO bounds", [
        (f'1 - sum(rate(http_server_request_duration_seconds_bucket{{{SEL},route=~"$route",le="0.2"}}[{RATE}])) / sum(rate(http_server_request_duration_seconds_count{{{SEL},route=~"$route"}}[{RATE}]))', "> 200 ms (budget 5%)"),
        (f'1 - sum(rate(http_server_request_duration_seconds_bucket{{{SEL},route=~"$route",le="0.5"}}[{RATE}])) / sum(rate(http_server_request_duration_seconds_count{{{SEL},route=~"$route"}}[{RATE}]))', "> 500 ms (budget 1%)"),
    ], "percentunit"))
    add(timeseries("Mean latency by route", [
        (f"sum by (route) (rate(http_server_request_duration_seconds_sum{{{SEL},route=~\"$route\"}}[{RATE}])) / sum by (route) (rate(http_server_request_duration_seconds_count{{{SEL},route=~\"$route\"}}[{RATE}]))", "{{route}}"),
    ], "s"))
    row("Concurrency")
    add(timeseries("Active requests", [(f"sum by (instance) (http_server_active_requests{{{SEL}}})", "{{instance}}")]))
    add(timeseries("Open connections", [(f"sum by (instance) (http_server_connections_active{{{SEL}}})", "{{instance}}")]))
    add(table("Requests per route and status, last hour", [
        (f"sum by (route, status) (increase(http_server_requests_total{{{SEL},route=~\"$route\"}}[1h]))", ""),
    ]), 24, 8)


def tools(add, row):
    row("Executions")
    add(timeseries("Executions by tool", [
        (f"sum by (tool) (rate(tool_executions_total{{{SEL},tool=~\"$tool\"}}[{RATE}]))", "{{tool}}"),
    ], "ops", stack=True))
    add(timeseries("Server error ratio by tool", [
        (f'sum by (tool) (rate(tool_executions_total{{{SEL},tool=~"$tool",status="server_error"}}[{RATE}])) / sum by (tool) (rate(tool_executions_total{{{SEL},tool=~"$tool"}}[{RATE}]))', "{{tool}}"),
    ], "percentunit", "The tool SLI: the server's faults only. Target below 0.1%.",
        thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.001)}))
    add(timeseries("Client errors by code", [
        (f'sum by (code) (rate(tool_errors_total{{{SEL},fault="client"}}[{RATE}]))', "{{code}}"),
    ], "ops", "Callers' mistakes (bad slugs, locks, invalid arguments): no budget, a ticket when they triple.",
        stack=True))
    add(timeseries("Server errors by code", [
        (f'sum by (code) (rate(tool_errors_total{{{SEL},fault="server"}}[{RATE}]))', "{{code}}"),
    ], "ops", "The server's faults (I/O, internal): these spend the tool error budget.", stack=True))
    add(timeseries("Active executions", [
        (f"sum by (tool) (tool_active_executions{{{SEL},tool=~\"$tool\"}})", "{{tool}}"),
    ]))
    add(timeseries("Executions by status", [
        (f"sum by (status) (rate(tool_executions_total{{{SEL},tool=~\"$tool\"}}[{RATE}]))", "{{status}}"),
    ], "ops", stack=True))
    row("Duration")
    add(timeseries("p95 duration by tool", [
        (quantile(0.95, "tool_execution_duration_seconds", ["tool"], ',tool=~"$tool"'), "{{tool}}"),
    ], "s", "Target below 500 ms.", thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.5)}))
    add(timeseries("p99 duration by tool", [
        (quantile(0.99, "tool_execution_duration_seconds", ["tool"], ',tool=~"$tool"'), "{{tool}}"),
    ], "s", "Target below 2 s.", thresholds={"mode": "absolute", "steps": steps("green", None, "red", 2)}))
    add(table("Executions per tool and status, last hour", [
        (f"sum by (tool, status) (increase(tool_executions_total{{{SEL},tool=~\"$tool\"}}[1h]))", ""),
    ]), 12, 8)
    add(timeseries("Executions per hour", [
        (f"sum by (tool) (increase(tool_executions_total{{{SEL},tool=~\"$tool\"}}[1h]))", "{{tool}}"),
    ]))


def streaming(add, row):
    row("Streams")
    add(stat("Open streams", f"sum(streaming_active_connections{{{SEL}}})"), 8, 4)
    add(stat("Messages / s", f"sum(rate(streaming_messages_total{{{SEL}}}[{RATE}]))", "ops"), 8, 4)
    add(stat("Bytes / s", f"sum(rate(streaming_bytes_transferred_total{{{SEL}}}[{RATE}]))", "Bps"), 8, 4)
    add(timeseries("Open streams by transport", [
        (f"sum by (transport) (streaming_active_connections{{{SEL},transport=~\"$transport\"}})", "{{transport}}"),
    ], stack=True))
    add(timeseries("Messages by transport", [
        (f"sum by (transport) (rate(streaming_messages_total{{{SEL},transport=~\"$transport\"}}[{RATE}]))", "{{transport}}"),
    ], "ops", stack=True))
    add(timeseries("Throughput by transport", [
        (f"sum by (transport) (rate(streaming_bytes_transferred_total{{{SEL},transport=~\"$transport\"}}[{RATE}]))", "{{transport}}"),
    ], "Bps", stack=True))
    add(timeseries("Mean message size by transport", [
        (f"sum by (transport) (rate(streaming_bytes_transferred_total{{{SEL},transport=~\"$transport\"}}[{RATE}])) / sum by (transport) (rate(streaming_messages_total{{{SEL},transport=~\"$transport\"}}[{RATE}]))", "{{transport}}"),
    ], "bytes"))
    add(timeseries("Streams per instance", [
        (f"sum by (instance) (streaming_active_connections{{{SEL}}})", "{{instance}}"),
    ]), 24, 8)
    row("Timing")
    add(timeseries("Time to first event, p95", [
        (quantile(0.95, "streaming_first_event_seconds", ["transport"], ',transport=~"$transport"'), "{{transport}}"),
    ], "s", "The streaming SLO: p95 under 100 ms from a stream's opening to its first event.",
        thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.1)}))
    add(timeseries("Stream lifetime, p50 and p95", [
        (quantile(0.5, "streaming_duration_seconds", ["transport"], ',transport=~"$transport"'), "p50 {{transport}}"),
        (quantile(0.95, "streaming_duration_seconds", ["transport"], ',transport=~"$transport"'), "p95 {{transport}}"),
    ], "s", "How long streams stay open: seconds for SSE answers, hours for held GET and legacy streams."))


def infrastructure(add, row):
    row("Process")
    add(stat("Uptime", f"time() - max(process_start_time_seconds{{{SEL}}})", "s"), 6, 4)
    add(stat("Memory used of limit", f"max(process_resident_memory_bytes{{{SEL}}} / process_memory_limit_bytes{{{SEL}}})",
             "percentunit", steps=steps("green", None, "orange", 0.85, "red", 0.95)), 6, 4)
    add(stat("Descriptors used", f"max(process_open_fds{{{SEL}}} / process_max_fds{{{SEL}}})",
             "percentunit", steps=steps("green", None, "orange", 0.8)), 6, 4)
    add(stat("Version", f"count by (version) (build_info{{{SEL}}})", "none", legend="{{version}}"), 6, 4)
    add(timeseries("CPU", [(f"rate(process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{instance}}")],
                   "none", "Cores in use; alert above 0.8.",
                   thresholds={"mode": "absolute", "steps": steps("green", None, "red", 0.8)}))
    add(timeseries("Memory", [
        (f"process_resident_memory_bytes{{{SEL}}}", "resident {{instance}}"),
        (f"process_memory_limit_bytes{{{SEL}}}", "limit {{instance}}"),
        (f"process_virtual_memory_bytes{{{SEL}}}", "virtual {{instance}}"),
    ], "bytes"))
    add(timeseries("File descriptors", [
        (f"process_open_fds{{{SEL}}}", "open {{instance}}"),
        (f"process_max_fds{{{SEL}}}", "max {{instance}}"),
    ]))
    add(timeseries("Threads", [(f"process_threads{{{SEL}}}", "{{instance}}")]))
    row("Load and telemetry")
    add(timeseries("Active operations", [
        (f"sum(http_server_active_requests{{{SEL}}})", "requests"),
        (f"sum(tool_active_executions{{{SEL}}})", "tool executions"),
        (f"sum(streaming_active_connections{{{SEL}}})", "streams"),
        (f"sum(http_server_connections_active{{{SEL}}})", "connections"),
    ]))
    add(timeseries("Trace exporter losses", [
        (f"sum(rate(trace_spans_dropped_total{{{SEL}}}[{RATE}]))", "spans dropped / s"),
        (f"sum(rate(trace_export_failures_total{{{SEL}}}[{RATE}]))", "export failures / s"),
    ], "ops"))
    add(timeseries("Health checks", [(f"health_check_status{{{SEL}}}", "{{check}} {{instance}}")],
                   "none", "1 healthy, 0.5 degraded, 0 unhealthy."), 24, 8)


def security(add, row):
    row("Authentication")
    add(stat("Auth failure ratio", "task_mcp:auth_failures:ratio_rate5m", "percentunit",
             "Invalid tokens among attempts; alert above 10%.",
             steps("green", None, "orange", 0.05, "red", 0.1)), 8, 4)
    add(stat("Rate-limited / s", f"sum(rate(rate_limit_hits_total{{{SEL}}}[{RATE}]))", "reqps"), 8, 4)
    add(stat("TLS handshake failures / s", f"sum(rate(tls_handshake_failures_total{{{SEL}}}[{RATE}]))", "ops"), 8, 4)
    add(timeseries("Authentication attempts by result", [
        (f"sum by (result) (rate(auth_attempts_total{{{SEL}}}[{RATE}]))", "{{result}}"),
    ], "ops", stack=True))
    add(timeseries("Rate-limit hits by scope", [
        (f"sum by (scope) (rate(rate_limit_hits_total{{{SEL}}}[{RATE}]))", "{{scope}}"),
    ], "ops", stack=True))
    row("Refusals")
    add(timeseries("401, 403 and 429 responses", [
        (f'sum by (status) (rate(http_server_requests_total{{{SEL},status=~"401|403|429"}}[{RATE}]))', "{{status}}"),
    ], "reqps", stack=True))
    add(timeseries("4xx by route", [
        (f'sum by (route) (rate(http_server_requests_total{{{SEL},status=~"4.."}}[{RATE}]))', "{{route}}"),
    ], "reqps", stack=True))
    add(timeseries("TLS handshake failures", [
        (f"sum by (instance) (rate(tls_handshake_failures_total{{{SEL}}}[{RATE}]))", "{{instance}}"),
    ], "ops"))
    add(timeseries("Unmatched routes", [
        (f'sum by (method, status) (rate(http_server_requests_total{{{SEL},route="other"}}[{RATE}]))', "{{method}} {{status}}"),
    ], "reqps", "Requests to paths the server does not serve: scanners show up here."))


def label_var(name, label, metric):
    definition = f'label_values({metric}{{job="task-mcp"}}, {label})'
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": definition, "refId": name},
        "definition": definition,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "hide": 0,
    }


DASHBOARDS = [
    ("overview", "task-mcp-overview", "task-mcp / Overview",
     "Service status, SLOs, error budget burn, traffic and resources.", overview, ()),
    ("api", "task-mcp-api", "task-mcp / HTTP API",
     "Requests by method, route and status; latency percentiles; concurrency.", api,
     (label_var("route", "route", "http_server_requests_total"),)),
    ("tools", "task-mcp-tools", "task-mcp / Tools",
     "Tool execution rate, errors and duration.", tools,
     (label_var("tool", "tool", "tool_executions_total"),)),
    ("streaming", "task-mcp-streaming", "task-mcp / Streaming",
     "SSE and NDJSON streams: open streams, messages and bytes by transport.", streaming,
     (label_var("transport", "transport", "streaming_active_connections"),)),
    ("infrastructure", "task-mcp-infrastructure", "task-mcp / Infrastructure",
     "Process CPU, memory, descriptors, threads, health checks and trace exporter.", infrastructure, ()),
    ("security", "task-mcp-security", "task-mcp / Security",
     "Authentication outcomes, rate limiting, refusals and TLS handshake failures.", security, ()),
]


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "dashboards"
    out.mkdir(parents=True, exist_ok=True)
    for file, uid, title, description, build, extra in DASHBOARDS:
        doc = dashboard(uid, title, description, build, extra)
        (out / f"{file}.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
