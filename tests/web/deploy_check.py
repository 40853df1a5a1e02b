"""deploy_check.py: deploy/observability and deploy/k8s, statically and against
live scrapes (run by tests/web/run.sh with WEB_URL and WORKER_METRICS_URL).

Every file parses (YAML, JSON); every lash_* metric a query names is a family
that lash-web or a lash-worker really exported in this run; the manifests hang
together (the autoscaler targets the worker Deployment and scales on eligible
rows; the ports the scrape config keeps are the ones the containers open)."""
import glob
import json
import os
import re
import sys
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

root = os.environ["WEB_ROOT"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def families(url):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        for s in fam.samples:
            names.add(s.name)  # counters' _total, histograms' _bucket/_sum/_count
    return names


exported = families(os.environ["WEB_URL"] + "metrics") | families(os.environ["WORKER_METRICS_URL"])
docs = {}
for path in sorted(glob.glob(f"{root}/deploy/k8s/*.yaml") + glob.glob(f"{root}/deploy/observability/*.yml")):
    with open(path) as f:
        docs[path] = [d for d in yaml.safe_load_all(f) if d is not None]
    check(docs[path], f"{path}: no YAML document")
with open(f"{root}/deploy/observability/grafana-dashboard.json") as f:
    dash = json.load(f)

exprs = []
for p in dash["panels"]:
    for t in p["targets"]:
        exprs.append(("grafana: " + p["title"], t["expr"]))
exprs.append(("grafana: queue variable", dash["templating"]["list"][1]["query"]))
for path, ds in docs.items():
    for d in ds:
        if d.get("kind") == "ScaledObject":
            for t in d["spec"]["triggers"]:
                exprs.append((path, t["metadata"]["query"]))
named = 0
for where, e in exprs:
    for m in re.findall(r"\blash_[a-z_]+", e):
        named += 1
        check(m in exported, f"{where}: {m} is not exported by lash-web or lash-worker")

by_kind = {}
for ds in docs.values():
    for d in ds:
        by_kind.setdefault(d.get("kind"), []).append(d)
so = by_kind["ScaledObject"][0]
deps = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
check(so["spec"]["scaleTargetRef"]["name"] in deps, "the ScaledObject targets a Deployment here")
check(any("lash_eligible_processes" in t["metadata"]["query"] for t in so["spec"]["triggers"]),
      "the autoscaler scales on eligible rows")
worker = deps["lash-worker"]["spec"]["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value") for e in worker["env"]}
port = int(env["LASH_METRICS_LISTEN"].rsplit(":", 1)[1])
check(any(p["containerPort"] == port and p["name"] == "metrics" for p in worker["ports"]),
      "the worker's metrics port is the one it listens on, named as the scrape config keeps")
web = deps["lash-web"]["spec"]["template"]["spec"]["containers"][0]
wenv = {e["name"]: e.get("value") for e in web["env"]}
check("LASH_WEB_TOKEN" not in wenv or wenv["LASH_WEB_TOKEN"] is None, "no token in a manifest")
prom = docs[f"{root}/deploy/observability/prometheus.yml"][0]
targets = [t for j in prom["scrape_configs"] for c in j.get("static_configs", []) for t in c["targets"]]
check(any(t.endswith(":9464") for t in targets), "prometheus scrapes lash-web's port")
print(f"deploy: {len(docs)} YAML files and the dashboard parse; {named} metric names in "
      f"{len(exprs)} queries, all exported")
if failures:
    sys.exit(1)
