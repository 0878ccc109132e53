#!/usr/bin/env python3
"""Static checks of the monitoring tree against what the server really exports.

    check_monitoring.py EXPOSITION MONITORING_DIR

EXPOSITION is a Prometheus text exposition of the server (a scrape of /metrics, or the
`dump_exposition` test's output). The script fails (exit 1, one line per finding) when:

- a rule or dashboard query reads a metric the exposition does not hold, other than the
  recording rules defined in prometheus/rules and the series Prometheus makes itself (`up`);
  histogram families count as their `_bucket`, `_sum` and `_count` series;
- a selector matches on a label the metric does not carry (target labels `job` and `instance`
  are added by Prometheus and always allowed);
- a query does not parse as PromQL (Grafana's `$__rate_interval` and friends are replaced
  by a duration first);
- an alert lacks a severity (critical, warning, info), a team, a summary, a description or a
  runbook_url whose anchor is a heading of RUNBOOKS.md;
- a dashboard is missing, has the wrong UID, or a panel has no query or no data source.

Needs PyYAML and promql-parser (pip install pyyaml promql-parser).
"""

import json
import re
import sys
from pathlib import Path

import promql_parser
import yaml

# Series Prometheus writes itself for every target; the rules may read them.
PROMETHEUS_MADE = {"up"}
# Labels every scraped series gets from its target.
TARGET_LABELS = {"job", "instance"}
SEVERITIES = {"critical", "warning", "info"}
TEAMS = {"sre", "infrastructure", "security", "business"}
DASHBOARD_UIDS = {
    "overview.json": "task-mcp-overview",
    "api.json": "task-mcp-api",
    "tools.json": "task-mcp-tools",
    "streaming.json": "task-mcp-streaming",
    "infrastructure.json": "task-mcp-infrastructure",
    "security.json": "task-mcp-security",
}
GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


def exported_series(text):
    """Metric name -> label names, from an exposition. Histograms yield their three series."""
    kinds = {}
    labels = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
        names = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', line[len(name):].split("} ")[0]))
        labels.setdefault(name, set()).update(names)
    for name, kind in kinds.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                labels.setdefault(name + suffix, set())
        else:
            labels.setdefault(name, set())
    return labels


def selectors(expr):
    """(metric name or None, {label names}) for every vector selector in a PromQL expression."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            names = {m.name for m in node.matchers.matchers}
            name = node.name
            for m in node.matchers.matchers:
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
                    name = m.value
            found.append((name, names - {"__name__"}))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


class Checker:
    def __init__(self, exported, recorded):
        self.exported = exported
        self.recorded = recorded
        self.findings = []
        self.metrics_used = set()

    def query(self, where, expr):
        expr = GRAFANA_DURATIONS.sub("5m", expr)
        label_values = LABEL_VALUES.match(expr)
        wanted_label = None
        if label_values:
            expr, wanted_label = label_values.group(1), label_values.group(2)
        try:
            found = selectors(expr)
        except ValueError as e:
            self.findings.append(f"{where}: does not parse: {e}: {expr}")
            return
        for name, labels in found:
            if name is None:
                self.findings.append(f"{where}: selector without a metric name: {expr}")
                continue
            self.metrics_used.add(name)
            if name in self.recorded or name in PROMETHEUS_MADE:
                continue
            if name not in self.exported:
                self.findings.append(f"{where}: metric {name} is not exported by the server")
                continue
            carried = self.exported[name] | TARGET_LABELS
            for label in sorted(labels - carried):
                self.findings.append(f"{where}: {name} has no label {label}")
            if wanted_label and wanted_label not in carried:
                self.findings.append(f"{where}: {name} has no label {wanted_label}")


def runbook_anchors(runbooks_md):
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in runbooks_md.splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def check_rules(checker, rule_files, anchors):
    alerts = 0
    for path in rule_files:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                where = f"{path.name}:{name}"
                checker.query(where, rule["expr"])
                if "alert" not in rule:
                    continue
                alerts += 1
                labels = rule.get("labels", {})
                notes = rule.get("annotations", {})
                if labels.get("severity") not in SEVERITIES:
                    checker.findings.append(f"{where}: severity must be one of {sorted(SEVERITIES)}")
                if labels.get("team") not in TEAMS:
                    checker.findings.append(f"{where}: team must be one of {sorted(TEAMS)}")
                for key in ("summary", "description", "runbook_url"):
                    if not notes.get(key):
                        checker.findings.append(f"{where}: no {key} annotation")
                url = notes.get("runbook_url", "")
                if not url.startswith("monitoring/RUNBOOKS.md#"):
                    checker.findings.append(f"{where}: runbook_url must point into monitoring/RUNBOOKS.md")
                elif url.split("#", 1)[1] not in anchors:
                    checker.findings.append(f"{where}: RUNBOOKS.md has no heading for #{url.split('#', 1)[1]}")
    return alerts


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def check_dashboards(checker, directory):
    queries = 0
    for file, uid in DASHBOARD_UIDS.items():
        path = directory / file
        if not path.exists():
            checker.findings.append(f"{file}: missing")
            continue
        doc = json.loads(path.read_text())
        if doc.get("uid") != uid:
            checker.findings.append(f"{file}: uid {doc.get('uid')!r}, want {uid!r}")
        ids = [p.get("id") for p in panels_of(doc)]
        if len(ids) != len(set(ids)):
            checker.findings.append(f"{file}: duplicate panel ids")
        for panel in panels_of(doc):
            if panel.get("type") == "row":
                continue
            if panel.get("type") == "alertlist":
                # No query of its own: it lists the rules' alerts, filtered to this job.
                if "task-mcp" not in panel.get("options", {}).get("alertInstanceLabelFilter", ""):
                    checker.findings.append(f"{file}:{panel.get('title')}: alert list not filtered to the job")
                continue
            where = f"{file}:{panel.get('title')}"
            if not panel.get("datasource"):
                checker.findings.append(f"{where}: no data source")
            if not panel.get("targets"):
                checker.findings.append(f"{where}: no query")
            for target in panel.get("targets", []):
                queries += 1
                checker.query(where, target.get("expr", ""))
        for var in doc.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                queries += 1
                checker.query(f"{file}:variable {var['name']}", query)
        for note in doc.get("annotations", {}).get("list", []):
            if note.get("expr"):
                queries += 1
                checker.query(f"{file}:annotation {note.get('name')}", note["expr"])
    return queries


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    exposition, root = Path(sys.argv[1]), Path(sys.argv[2])
    exported = exported_series(exposition.read_text())
    rule_files = sorted((root / "prometheus" / "rules").glob("*.yml"))
    recorded = set()
    for path in rule_files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded.update(r["record"] for r in group["rules"] if "record" in r)
    checker = Checker(exported, recorded)
    anchors = runbook_anchors((root / "RUNBOOKS.md").read_text())
    alerts = check_rules(checker, rule_files, anchors)
    queries = check_dashboards(checker, root / "grafana" / "dashboards")
    unused = sorted(n for n in recorded if n not in checker.metrics_used)
    for finding in checker.findings:
        print(f"FAIL {finding}")
    used = sorted(n for n in checker.metrics_used if n in exported)
    print(
        f"{len(exported)} exported series names, {len(recorded)} recording rules, {alerts} alerts, "
        f"{queries} dashboard queries; {len(used)} exported names in use; "
        f"recording rules read by nothing: {unused or 'none'}"
    )
    print(f"{len(checker.findings)} findings")
    sys.exit(1 if checker.findings else 0)


if __name__ == "__main__":
    main()
