#!/usr/bin/env python3
"""Cross-file checks of the deployment files that no schema can make (.ci/deploy-check.sh).

    lint.py k8s       Kubernetes manifests: kustomization lists every manifest; names that refer
                      to each other match (ConfigMap, Secrets, PVC, ServiceAccount, selectors,
                      named ports, HPA target); the pod meets the "restricted" security profile;
                      the grace period outlasts the server's drain.
    lint.py compose   docker-compose.yml: every file it mounts exists; the OTLP endpoint names the
                      collector service and its receiver port.
    lint.py otel      deploy/otel-collector/config.yaml: every component a pipeline names is
                      defined, and OTLP/HTTP listens on 4318.
    lint.py check-config BIN
                      `BIN check-config` accepts the settings each file gives the server.
    lint.py context DIR
                      Copy what `docker build .` would send (honouring .dockerignore) into DIR.
    lint.py env       Every configuration variable set in the Dockerfile, compose, Kubernetes and
                      systemd files is one task-mcp reads (catches typos that would be ignored).

Needs PyYAML (installed with kubernetes-validate). Exit status 1 on the first failed file set.
"""

import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "k8s")

# What task-mcp reads from its environment, used when src/config.rs (the real table) is absent.
SERVER_ENV = {
    "HOST", "PORT", "TLS_CERT", "TLS_KEY", "TLS_CA", "AUTH_TOKENS", "AUTH_TOKENS_FILE",
    "ALLOWED_ORIGINS", "ALLOWED_HOSTS", "TRUSTED_PROXIES", "RATE_LIMIT", "HEARTBEAT_MS",
    "MAX_RESPONSE_SIZE_KB", "LOG_LEVEL", "LOG_FORMAT", "OTEL_ENABLED",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "ENABLE_PROMETHEUS",
    "PROMETHEUS_PORT", "PROMETHEUS_HOST", "TASK_MCP_ROOT", "AUDIT_LOG", "MAX_CONNECTIONS",
    "SHUTDOWN_GRACE_MS", "MCP_SESSIONS", "MAX_STREAMS", "RATE_LIMIT_BURST", "RATE_LIMIT_REDIS_URL",
}
# Read by the platform rather than the server, but legitimately set beside it.
PLATFORM_ENV = {"SSL_CERT_FILE", "POD_NAME", "RUST_BACKTRACE"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def ok(msg):
    print(f"  ok   {msg}")


def expect(cond, msg):
    (ok if cond else fail)(msg)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- Kubernetes --------------------------------------------------------------------------------


def k8s():
    kust = load_all(os.path.join(K8S, "kustomization.yaml"))[0]
    listed = kust.get("resources", [])
    on_disk = sorted(
        f for f in os.listdir(K8S)
        if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml" and ".example." not in f
    )
    missing = [r for r in listed if not os.path.exists(os.path.join(K8S, r))]
    expect(not missing, f"kustomization resources exist ({len(listed)} listed; missing: {missing})")
    unlisted = [f for f in on_disk if f not in listed]
    expect(not unlisted, f"every manifest is listed in kustomization.yaml (unlisted: {unlisted})")

    objs = []
    for f in on_disk + sorted(x for x in os.listdir(K8S) if ".example." in x):
        objs += load_all(os.path.join(K8S, f))
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o

    ns = next(iter(by_kind.get("Namespace", {})), None)
    expect(ns is not None and kust.get("namespace") == ns,
           f"kustomization namespace is the Namespace manifest's ({ns})")
    wrong_ns = [f"{o['kind']}/{o['metadata']['name']}" for o in objs
                if o["kind"] != "Namespace" and o["metadata"].get("namespace") != ns]
    expect(not wrong_ns, f"every object is in namespace {ns} (others: {wrong_ns})")
    psa = by_kind["Namespace"][ns]["metadata"].get("labels", {})
    expect(psa.get("pod-security.kubernetes.io/enforce") == "restricted",
           "the namespace enforces the restricted Pod Security Standard")

    (dep,) = by_kind["Deployment"].values()
    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    labels = tmpl["metadata"]["labels"]
    (ctr,) = pod["containers"]

    def selects(sel):
        return sel and all(labels.get(k) == v for k, v in sel.items())

    expect(selects(dep["spec"]["selector"]["matchLabels"]), "Deployment selector matches its pods")
    for kind in ("Service",):
        for name, o in by_kind.get(kind, {}).items():
            expect(selects(o["spec"]["selector"]), f"{kind}/{name} selects the pods")
    for kind in ("PodDisruptionBudget",):
        for name, o in by_kind.get(kind, {}).items():
            expect(selects(o["spec"]["selector"]["matchLabels"]), f"{kind}/{name} selects the pods")
    for name, o in by_kind.get("NetworkPolicy", {}).items():
        expect(selects(o["spec"]["podSelector"]["matchLabels"]), f"NetworkPolicy/{name} selects the pods")
    for name, o in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = o["spec"]["scaleTargetRef"]
        expect(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"],
               f"HPA/{name} targets the Deployment")
        expect(o["spec"]["minReplicas"] >= 2, f"HPA/{name} keeps at least 2 replicas (PDB can hold)")

    for ef in ctr.get("envFrom", []):
        if "configMapRef" in ef:
            expect(ef["configMapRef"]["name"] in by_kind.get("ConfigMap", {}),
                   f"envFrom ConfigMap {ef['configMapRef']['name']} exists")
    for vol in pod.get("volumes", []):
        if "secret" in vol:
            expect(vol["secret"]["secretName"] in by_kind.get("Secret", {}),
                   f"Secret {vol['secret']['secretName']} has an example")
        if "persistentVolumeClaim" in vol:
            expect(vol["persistentVolumeClaim"]["claimName"] in by_kind.get("PersistentVolumeClaim", {}),
                   f"PVC {vol['persistentVolumeClaim']['claimName']} exists")
    mounts = {m["name"] for m in ctr.get("volumeMounts", [])}
    expect(mounts == {v["name"] for v in pod.get("volumes", [])}, "every volume is mounted")
    expect(pod.get("serviceAccountName") in by_kind.get("ServiceAccount", {}),
           "the ServiceAccount exists")

    port_names = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    for name, svc in by_kind.get("Service", {}).items():
        for p in svc["spec"]["ports"]:
            tp = p["targetPort"]
            expect(tp in port_names or tp in port_names.values(),
                   f"Service/{name} port {p['name']} targets a container port")
    for probe in ("livenessProbe", "readinessProbe"):
        g = ctr[probe]["httpGet"]
        expect(g["port"] in port_names and g["scheme"] == "HTTPS",
               f"{probe} uses the named HTTPS port ({g['path']})")
    expect(ctr["livenessProbe"]["httpGet"]["path"] == "/health/live", "liveness is /health/live")
    expect(ctr["readinessProbe"]["httpGet"]["path"] == "/health/ready", "readiness is /health/ready")

    cfg = next(iter(by_kind["ConfigMap"].values()))["data"]
    expect(str(port_names.get("https")) == cfg.get("PORT"), "containerPort https equals PORT")
    expect(str(port_names.get("metrics")) == cfg.get("PROMETHEUS_PORT"),
           "containerPort metrics equals PROMETHEUS_PORT")
    ann = tmpl["metadata"].get("annotations", {})
    expect(ann.get("prometheus.io/port") == cfg.get("PROMETHEUS_PORT"),
           "the scrape annotation names PROMETHEUS_PORT")

    psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    expect(psc.get("runAsNonRoot") and psc.get("runAsUser") == 65532, "pod runs as non-root 65532")
    expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    expect(csc.get("readOnlyRootFilesystem") is True, "read-only root file system")
    expect(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
    expect(pod.get("automountServiceAccountToken") is False, "no service account token mounted")

    grace_ms = pod["terminationGracePeriodSeconds"] * 1000
    pre = ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0) * 1000
    drain = int(cfg["SHUTDOWN_GRACE_MS"])
    expect(grace_ms > pre + drain,
           f"terminationGracePeriodSeconds ({grace_ms} ms) > preStop ({pre} ms) + SHUTDOWN_GRACE_MS ({drain} ms)")

    res = ctr["resources"]
    expect(all(k in res.get("requests", {}) for k in ("cpu", "memory")),
           "CPU and memory requests are set (the HPA measures against them)")
    expect("memory" in res.get("limits", {}), "a memory limit is set")


# --- compose -----------------------------------------------------------------------------------


def compose():
    path = os.path.join(ROOT, "docker-compose.yml")
    doc = load_all(path)[0]
    services = doc["services"]
    for name, svc in services.items():
        build = svc.get("build")
        if isinstance(build, dict):
            df = os.path.join(ROOT, build.get("context", "."), build.get("dockerfile", "Dockerfile"))
            expect(os.path.exists(df), f"{name}: build file {os.path.relpath(df, ROOT)} exists")
        for src, _ in mounts_of(svc):
            if "${" in src or not src.startswith((".", "/")):
                continue
            full = os.path.normpath(os.path.join(ROOT, src))
            expect(os.path.exists(full), f"{name}: mounted {src} exists")
    env = services["task-mcp"]["environment"]
    url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    m = re.match(r"https?://([^:/]+):(\d+)/v1/traces$", url)
    expect(m and m.group(1) in services, f"the OTLP endpoint {url} names a compose service")
    if m:
        otel = load_all(os.path.join(ROOT, "deploy", "otel-collector", "config.yaml"))[0]
        http_ep = otel["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        expect(http_ep.endswith(":" + m.group(2)), f"the collector's OTLP/HTTP receiver listens on {m.group(2)}")
    monitoring_refs(services)
    stop = services["task-mcp"].get("stop_grace_period", "10s")
    secs = int(re.match(r"(\d+)s$", stop).group(1))
    expect(secs * 1000 > int(env.get("SHUTDOWN_GRACE_MS", "0")),
           f"stop_grace_period ({stop}) outlasts SHUTDOWN_GRACE_MS")


def mounts_of(svc):
    """(host source, container target) of each bind mount of a compose service."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            m = re.match(r"^(\$\{[^}]*\}[^:]*|[^:]+):([^:]+)(?::.*)?$", v)
            if m:
                out.append((m.group(1), m.group(2)))
        elif v.get("type") == "bind":
            out.append((v["source"], v["target"]))
    return out


def host_path(svc, container_path):
    """The file in this checkout that a service sees at container_path, or None if unmounted."""
    best = None
    for src, dst in mounts_of(svc):
        if container_path == dst or container_path.startswith(dst.rstrip("/") + "/"):
            if best is None or len(dst) > len(best[1]):
                best = (src, dst)
    if best is None:
        return None
    return best[0] + container_path[len(best[1]):]


def monitoring_refs(services):
    """What the monitoring configs name (hosts, files) must exist in the compose stack."""
    prom_svc = services.get("prometheus")
    prom_cfg = host_path(prom_svc, "/etc/prometheus/prometheus.yml") if prom_svc else None
    if prom_cfg and os.path.exists(os.path.join(ROOT, prom_cfg)):
        cfg = load_all(os.path.join(ROOT, prom_cfg))[0]
        for pattern in cfg.get("rule_files", []):
            full = pattern if pattern.startswith("/") else "/etc/prometheus/" + pattern
            src = host_path(prom_svc, os.path.dirname(full))
            expect(src is not None and os.path.isdir(os.path.join(ROOT, src)),
                   f"prometheus rule_files {pattern} is mounted from the checkout ({src})")
        targets = []
        for job in cfg.get("scrape_configs", []):
            for sc in job.get("static_configs", []):
                targets += sc.get("targets", [])
            # DNS discovery names a service; each of its replicas becomes a target.
            for sd in job.get("dns_sd_configs", []):
                targets += [f"{n}:{sd.get('port')}" for n in sd.get("names", [])]
        for am in cfg.get("alerting", {}).get("alertmanagers", []):
            for sc in am.get("static_configs", []):
                targets += sc.get("targets", [])
        for t in targets:
            host, _, port = t.rpartition(":")
            if host in ("localhost", "127.0.0.1"):
                continue
            expect(host in services, f"prometheus target {t} is a compose service")
        tm = services["task-mcp"]["environment"]
        expect(f"task-mcp:{tm.get('PROMETHEUS_PORT')}" in targets,
               "prometheus scrapes task-mcp on its PROMETHEUS_PORT")
    am_svc = services.get("alertmanager")
    am_cfg = host_path(am_svc, "/etc/alertmanager/alertmanager.yml") if am_svc else None
    if am_cfg and os.path.exists(os.path.join(ROOT, am_cfg)):
        cfg = load_all(os.path.join(ROOT, am_cfg))[0]
        for pattern in cfg.get("templates", []):
            full = pattern if pattern.startswith("/") else "/etc/alertmanager/" + pattern
            src = host_path(am_svc, os.path.dirname(full))
            expect(src is not None and os.path.isdir(os.path.join(ROOT, src)),
                   f"alertmanager templates {pattern} are mounted from the checkout ({src})")
        text = open(os.path.join(ROOT, am_cfg), encoding="utf-8").read()
        for path in sorted(set(re.findall(r"_file:\s*(/\S+)", text))):
            expect(host_path(am_svc, path) is not None, f"alertmanager reads {path} from a mount")
    gf_svc = services.get("grafana")
    prov = host_path(gf_svc, "/etc/grafana/provisioning") if gf_svc else None
    if prov and os.path.isdir(os.path.join(ROOT, prov)):
        for sub in ("dashboards", "datasources"):
            d = os.path.join(ROOT, prov, sub)
            files = sorted(f for f in os.listdir(d) if f.endswith((".yml", ".yaml"))) if os.path.isdir(d) else []
            for f in files:
                doc = load_all(os.path.join(d, f))[0] or {}
                for provider in doc.get("providers", []):
                    path = provider.get("options", {}).get("path", "")
                    src = host_path(gf_svc, path)
                    expect(src is not None and os.path.isdir(os.path.join(ROOT, src)),
                           f"grafana dashboard provider path {path} is a mounted directory ({src})")
                    if src is not None and os.path.isdir(os.path.join(ROOT, src)):
                        n = len([f for f in os.listdir(os.path.join(ROOT, src)) if f.endswith(".json")])
                        expect(n > 0, f"grafana finds {n} dashboards there")
                for ds in doc.get("datasources", []):
                    m = re.match(r"https?://([^:/]+)", ds.get("url", ""))
                    if m:
                        expect(m.group(1) in services, f"grafana datasource {ds.get('name')} points at a compose service")


# --- OpenTelemetry collector --------------------------------------------------------------------


def otel():
    cfg = load_all(os.path.join(ROOT, "deploy", "otel-collector", "config.yaml"))[0]
    svc = cfg["service"]
    for ext in svc.get("extensions", []):
        expect(ext in cfg.get("extensions", {}), f"extension {ext} is defined")
    for pname, p in svc["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for comp in p.get(section, []):
                expect(comp in cfg.get(section, {}), f"pipeline {pname}: {section[:-1]} {comp} is defined")
    expect(cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318"),
           "OTLP/HTTP receiver on 4318")


# --- environment variables ------------------------------------------------------------------------


def server_settings():
    """The names in src/config.rs's SETTINGS table when it exists, else SERVER_ENV."""
    path = os.path.join(ROOT, "src", "config.rs")
    if not os.path.exists(path):
        return SERVER_ENV, "the built-in list"
    with open(path, encoding="utf-8") as f:
        names = set(re.findall(r'\b(?:s|secret)\(\s*"([A-Z][A-Z0-9_]*)"', f.read()))
    return names, f"src/config.rs ({len(names)} settings)"


def env():
    known, source = server_settings()
    allowed = known | PLATFORM_ENV
    found = {}

    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ENV ") and "CARGO" not in line and "RUSTFLAGS" not in line:
            for k in re.findall(r"([A-Z_][A-Z0-9_]*)=", line):
                found.setdefault(k, "Dockerfile (runtime stage)")
    compose_doc = load_all(os.path.join(ROOT, "docker-compose.yml"))[0]
    for k in compose_doc["services"]["task-mcp"].get("environment", {}):
        found.setdefault(k, "docker-compose.yml")
    for o in load_all(os.path.join(K8S, "configmap.yaml")):
        for k in o.get("data", {}):
            found.setdefault(k, "deploy/k8s/configmap.yaml")
    for o in load_all(os.path.join(K8S, "deployment.yaml")):
        for c in o["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                found.setdefault(e["name"], "deploy/k8s/deployment.yaml")
    for f in ("task-mcp.service", "task-mcp.env.example"):
        with open(os.path.join(ROOT, "deploy", "systemd", f), encoding="utf-8") as fh:
            for line in fh:
                m = re.match(r"^#?(?:Environment=)?([A-Z_][A-Z0-9_]*)=", line.strip())
                if m:
                    found.setdefault(m.group(1), f"deploy/systemd/{f}")
    unknown = {k: v for k, v in found.items() if k not in allowed}
    expect(not unknown, f"{len(found)} variables set across the deployment files are all known "
                        f"to {source} (unknown: {unknown})")


# --- Docker build context -------------------------------------------------------------------------


def dockerignore_patterns():
    pats = []
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                pats.append(line)
    return pats


def ignored(rel, pats):
    """Docker's rule: the last matching pattern wins; `!` re-includes; a match on a directory
    excludes everything below it."""
    import fnmatch

    def match(pat, path):
        pat = pat.rstrip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and
                                                   fnmatch.fnmatchcase(prefix.split("/")[-1], pat[3:])):
                return True
        return False

    result = False
    for pat in pats:
        neg = pat.startswith("!")
        if match(pat[1:] if neg else pat, rel):
            result = not neg
    return result


def context(dest):
    """Copy the files `docker build .` would send into dest (used to build from the context)."""
    import shutil

    pats = dockerignore_patterns()
    count = 0
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in dirnames if not ignored(os.path.join(rel_dir, d), pats)]
        for fn in filenames:
            rel = os.path.join(rel_dir, fn)
            if ignored(rel, pats):
                continue
            os.makedirs(os.path.join(dest, rel_dir), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel))
            count += 1
    print(f"  {count} files in the build context")
    for must in ("Cargo.toml", "Cargo.lock", "src/main.rs"):
        expect(os.path.exists(os.path.join(dest, must)), f"the build context has {must}")
    for never in ("target", ".git", "certs", "secrets"):
        expect(not os.path.exists(os.path.join(dest, never)), f"the build context leaves out {never}/")


def settings_by_source():
    """{source: {VAR: value}} of the server settings each deployment file sets."""
    out = {}
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    runtime = text.split("FROM scratch", 1)[-1]
    env = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for k, v in re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', line):
                env[k] = v.strip('"')
    out["Dockerfile"] = env
    compose_doc = load_all(os.path.join(ROOT, "docker-compose.yml"))[0]
    env = {}
    for k, v in compose_doc["services"]["task-mcp"].get("environment", {}).items():
        env[k] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
    out["docker-compose.yml"] = env
    env = {}
    for o in load_all(os.path.join(K8S, "configmap.yaml")):
        env.update({k: str(v) for k, v in o.get("data", {}).items()})
    for o in load_all(os.path.join(K8S, "deployment.yaml")):
        for c in o["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"].replace("$(POD_NAME)", "task-mcp-0")
    out["deploy/k8s"] = env
    env = {}
    with open(os.path.join(ROOT, "deploy", "systemd", "task-mcp.service"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^Environment=([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
            if m:
                v = m.group(2).replace("%d", "/run/credentials/task-mcp.service").replace("%S", "/var/lib")
                env[m.group(1)] = v
    out["deploy/systemd/task-mcp.service"] = env
    return out


def check_config(binary):
    """`task-mcp check-config` accepts the settings each deployment file gives the server."""
    import subprocess

    known, _ = server_settings()
    for source, env in settings_by_source().items():
        env = {k: v for k, v in env.items() if k in known}
        res = subprocess.run([binary, "check-config"], env={"PATH": os.environ.get("PATH", ""), **env},
                             capture_output=True, text=True, check=False)
        expect(res.returncode == 0,
               f"task-mcp check-config accepts the {len(env)} settings of {source}"
               + ("" if res.returncode == 0 else f": {res.stderr.strip()[:300]}"))


def main():
    if sys.argv[1:2] == ["context"]:
        context(sys.argv[2])
        return 1 if failures else 0
    if sys.argv[1:2] == ["check-config"]:
        print("[check-config]")
        check_config(sys.argv[2])
        return 1 if failures else 0
    checks = {"k8s": k8s, "compose": compose, "otel": otel, "env": env}
    names = sys.argv[1:] or list(checks)
    for n in names:
        print(f"[{n}]")
        checks[n]()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
