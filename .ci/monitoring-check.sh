#!/usr/bin/env bash
# Checks monitoring/ with the real Prometheus and Alertmanager tools, and against the metrics the
# server really exports.
#
#   .ci/monitoring-check.sh [EXPOSITION]
#
# EXPOSITION is a Prometheus text exposition of the server. Without it, one is rendered by the
# `observe::metrics::tests::dump_exposition` unit test (every metric family touched once). To check against
# a running server instead, scrape it and pass the file:
#   curl -s http://127.0.0.1:9464/metrics > /tmp/scrape.prom && .ci/monitoring-check.sh /tmp/scrape.prom
#
# Installs what it needs: Debian's prometheus (promtool) and prometheus-alertmanager (amtool), jq,
# and a Python venv under target/ with PyYAML and promql-parser.
# Ends with "monitoring-check: N passed, M failed" and exits non-zero if any step failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
# shellcheck source=lib.sh source-path=SCRIPTDIR
. .ci/lib.sh
ROOT=$PWD
MON=$ROOT/monitoring
WORK=$ROOT/target/monitoring-check
mkdir -p "$WORK"

install_tools() {
    local missing=()
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
    command -v jq >/dev/null || missing+=(jq)
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}" || return 1
    fi
    monitoring_venv "$WORK/venv"
}

prometheus_config() {
    promtool check config "$MON/prometheus/prometheus.yml"
}

rules_syntax() {
    promtool check rules "$MON"/prometheus/rules/*.yml
}

rules_unit_tests() {
    promtool test rules "$MON"/prometheus/tests/*.yml
}

alertmanager_config() {
    amtool check-config "$MON/alertmanager/alertmanager.yml"
}

# Each template rendered with sample notifications must equal its reviewed golden file.
alertmanager_templates() {
    local ok=0 data golden name
    for data in "$MON"/alertmanager/testdata/*.json; do
        for golden in "${data%.json}".*.golden; do
            name=${golden#"${data%.json}".}
            name=${name%.golden}
            if ! diff -u "$golden" <(amtool template render \
                --template.glob="$MON/alertmanager/templates/*.tmpl" --template.data="$data" \
                --template.text="{{ template \"$name\" . }}" 2>&1); then
                echo "template $name on $(basename "$data") differs from its golden file"
                ok=1
            fi
        done
    done
    return $ok
}

# Every alert in the rules must reach the receivers its labels promise: its team's inbox, the SRE
# inbox for SLO alerts, and the receiver of its severity.
alertmanager_routing() {
    local ok=0 labels want got
    while IFS='|' read -r labels want; do
        # shellcheck disable=SC2086  # labels are separate words on purpose
        got=$(amtool config routes test --config.file="$MON/alertmanager/alertmanager.yml" $labels 2>/dev/null)
        if [[ $got != "$want" ]]; then
            echo "labels [$labels] route to [$got], want [$want]"
            ok=1
        fi
    done < <("$WORK/venv/bin/python" - "$MON"/prometheus/rules/*.yml <<'PY'
import sys, yaml
team_receiver = {"infrastructure": "email-infrastructure", "security": "email-security", "business": "email-product"}
severity_receiver = {"critical": "critical", "warning": "warning", "info": "slack-info"}
for path in sys.argv[1:]:
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            labels = dict(rule.get("labels", {}), alertname=rule["alert"])
            want = [team_receiver[labels["team"]]] if labels.get("team") in team_receiver else []
            want += ["email-sre"] if labels.get("slo") else []
            want.append(severity_receiver.get(labels.get("severity"), "slack-alerts"))
            print(" ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "|" + ",".join(want))
PY
    )
    [[ $ok == 0 ]] && echo "every alert routes to its team and severity receivers"
    return $ok
}

dashboards_json() {
    local f ok=0
    for f in "$MON"/grafana/dashboards/*.json; do
        jq -e '.uid and .title and (.panels | length > 0)' "$f" >/dev/null || { echo "bad dashboard $f"; ok=1; }
    done
    return $ok
}

# The committed dashboards must be exactly what build_dashboards.py writes.
dashboards_generated() {
    rm -rf "$WORK/dashboards"
    python3 "$MON/grafana/build_dashboards.py" "$WORK/dashboards" &&
        diff -r "$MON/grafana/dashboards" "$WORK/dashboards"
}

exposition_lint() {
    promtool check metrics <"$EXPOSITION"
}

coverage() {
    "$WORK/venv/bin/python" "$MON/scripts/check_monitoring.py" "$EXPOSITION" "$MON"
}

if ! install_tools; then
    echo "could not install the tools"
    echo "monitoring-check: 0 passed, 1 failed"
    exit 1
fi

# The file must exist afterwards: a renamed test would otherwise run nothing and pass.
render_exposition() {
    rm -f "$EXPOSITION"
    METRICS_EXPOSITION_OUT="$EXPOSITION" \
        cargo test --quiet --lib observe::metrics::tests::dump_exposition -- --ignored --exact &&
        test -s "$EXPOSITION"
}

EXPOSITION=${1:-}
if [[ -z $EXPOSITION ]]; then
    EXPOSITION=$WORK/exposition.prom
    step "render an exposition (dump_exposition)" render_exposition
fi

step "promtool check config prometheus.yml" prometheus_config
step "promtool check rules" rules_syntax
step "promtool test rules" rules_unit_tests
step "amtool check-config" alertmanager_config
step "amtool template render vs goldens" alertmanager_templates
step "amtool config routes test for every alert" alertmanager_routing
step "dashboards are valid JSON with uid and panels" dashboards_json
step "dashboards match build_dashboards.py" dashboards_generated
step "promtool check metrics on the exposition" exposition_lint
step "rules and dashboards read only exported metrics" coverage

echo "monitoring-check: $passed passed, $failed failed"
((failed == 0))
