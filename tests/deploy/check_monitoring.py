#!/usr/bin/python3
"""manifests/monitoring fits the plugin: the PodMonitor scrapes the port the
DaemonSet declares for --metrics-port, the alerting rules pass `promtool check
rules` and alert on what an admin must know (a device unhealthy for 5
minutes, a resource not registered, overflow rescans), and every metric the
rules and the Grafana dashboard use is one the plugin exports."""

import json
import os
import re
import tempfile

import yaml

from deploy_common import Findings, check_parses, objects_of_kind, run, skip_unless_tool, source_path

skip_unless_tool("promtool")
f = Findings("monitoring")
check_parses(f, ["manifests/monitoring"])

# The metric families the plugin registers (src/metrics/prometheus_metrics.cpp).
with open(source_path("src/metrics/prometheus_metrics.cpp"), encoding="utf-8") as text:
    families = set(re.findall(r'\.Name\("(kvgpu_[a-z_]+)"\)', text.read()))
f.check(len(families) >= 10, f"the plugin's metric families are found in the source ({sorted(families)})")
exported = set(families)
for name in families:
    if name.endswith("_seconds"):
        exported |= {name + "_bucket", name + "_sum", name + "_count"}


def metrics_in(expr):
    return set(re.findall(r"\b(kvgpu_[a-z_]+)\b", expr))


# --- the PodMonitor against the DaemonSet -------------------------------------------------
(_, ds), = objects_of_kind("DaemonSet", ["manifests"])
container = ds["spec"]["template"]["spec"]["containers"][0]
pod_labels = ds["spec"]["template"]["metadata"]["labels"]
args = container.get("args", [])
metrics_port = next((a.split("=", 1)[1] for a in args if a.startswith("--metrics-port=")), None)
port_names = {p.get("name"): str(p.get("containerPort")) for p in container.get("ports", [])}
monitors = objects_of_kind("PodMonitor", ["manifests/monitoring"])
if f.check(len(monitors) == 1, f"manifests/monitoring holds one PodMonitor (found {len(monitors)})"):
    pm_file, pm = monitors[0]
    selector = pm["spec"]["selector"]["matchLabels"]
    f.check(all(pod_labels.get(k) == v for k, v in selector.items()),
            f"{pm_file}: selects the plugin's pods ({selector})")
    f.check(pm["metadata"]["namespace"] == ds["metadata"]["namespace"], f"{pm_file}: in the plugin's namespace")
    for endpoint in pm["spec"]["podMetricsEndpoints"]:
        f.check(port_names.get(endpoint.get("port")) == metrics_port,
                f"{pm_file}: scrapes port {endpoint.get('port')!r}, the DaemonSet's --metrics-port {metrics_port}")
        f.check(endpoint.get("path", "/metrics") == "/metrics", f"{pm_file}: path /metrics")

# --- the alerting rules ---------------------------------------------------------------------
rules = objects_of_kind("PrometheusRule", ["manifests/monitoring"])
if f.check(len(rules) == 1, f"manifests/monitoring holds one PrometheusRule (found {len(rules)})"):
    rule_file, rule = rules[0]
    with tempfile.TemporaryDirectory(prefix="kvgpu-rules-") as tmp:
        plain = os.path.join(tmp, "rules.yaml")
        with open(plain, "w", encoding="utf-8") as out:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, out)
        checked = run(["promtool", "check", "rules", plain])
        f.check(checked.returncode == 0, f"{rule_file}: promtool check rules: {checked.stdout.strip()} "
                                         f"{checked.stderr.strip()}")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    for alert in alerts:
        unknown = metrics_in(alert["expr"]) - exported
        f.check(not unknown, f"{rule_file}: {alert['alert']} uses only exported metrics (unknown: {sorted(unknown)})")

    def alerting(metric, extra=""):
        return [a for a in alerts if metric in a["expr"] and extra in a["expr"]]

    unhealthy = alerting("kvgpu_device_unhealthy")
    f.check(unhealthy and unhealthy[0].get("for") == "5m", f"{rule_file}: a device unhealthy for 5 minutes alerts")
    f.check(alerting("kvgpu_resource_registered"), f"{rule_file}: a resource not registered alerts")
    f.check(alerting("kvgpu_rescans_total", 'cause="overflow"'), f"{rule_file}: overflow rescans alert")

# --- the dashboard --------------------------------------------------------------------------
dashboard_file = "manifests/monitoring/grafana-dashboard.json"
with open(source_path(dashboard_file), encoding="utf-8") as text:
    dashboard = json.load(text)
panels = dashboard.get("panels", [])
for panel in panels:
    for target in panel.get("targets", []):
        unknown = metrics_in(target.get("expr", "")) - exported
        f.check(not unknown, f"{dashboard_file}: panel {panel['title']!r} uses only exported metrics "
                             f"(unknown: {sorted(unknown)})")
    f.check(panel.get("description"), f"{dashboard_file}: panel {panel.get('title')!r} says what it shows")
exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
f.check("kvgpu_devices" in exprs and "health" in exprs, f"{dashboard_file}: devices by health per node")
f.check("kvgpu_allocate_calls_total" in exprs, f"{dashboard_file}: allocations")
f.check("kvgpu_event_to_publish_seconds_bucket" in exprs, f"{dashboard_file}: event latency")

f.finish()
