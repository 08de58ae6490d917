"""deploy/k8s/ validates offline: every object against the Kubernetes schemas shipped in the
``kubernetes-validate`` package (strict: no unknown fields), custom resources (KEDA,
kustomize) structurally, and the references between objects and into Hydra itself: selectors
match pod labels, every Secret/ConfigMap key a pod reads exists, probe paths exist in the API
(or Flower), every HYDRA_* variable is a setting, commands name real CLI commands and queues,
and the workers' grace period covers the longest run plus the controller's shutdown grace."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hydra.cli import main as hydra_cli
from hydra.control.failover import SHUTDOWN_GRACE
from hydra.model.affinity import profile_from_queues
from hydra.settings import Settings, env_name

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
#: The Kubernetes version the manifests are validated against (the package's newest).
VERSION = kubernetes_validate.latest_version()
#: Custom resources: no schema in the package; checked structurally below.
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"), ("kustomize.config.k8s.io/v1beta1", "Kustomization")}
NON_HYDRA_ENV = {"FLOWER_BASIC_AUTH", "LOG_FORMAT", "LOG_LEVEL"}


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                found.append((path.name, doc))
    return found


DOCS = documents()


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def workloads() -> list[dict]:
    return [doc for _, doc in DOCS if doc["kind"] in ("Deployment", "Job")]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers() -> list[tuple[str, dict]]:
    return [(w["metadata"]["name"], c) for w in workloads() for c in pod_spec(w)["containers"]]


def test_there_is_something_to_check():
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Deployment", "Service", "Secret", "ConfigMap", "PodDisruptionBudget", "ScaledObject"} <= kinds
    names = {d["metadata"]["name"] for d in of_kind("Deployment")}
    assert names == {"hydra-api", "hydra-controller", "hydra-worker", "hydra-flower"}


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS])
def test_every_object_is_valid(name, doc):
    assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), name
    if (doc["apiVersion"], doc["kind"]) in CUSTOM:
        return  # test_custom_resources
    kubernetes_validate.validate(doc, VERSION, strict=True)
    if doc["kind"] not in ("Namespace",):
        assert doc["metadata"].get("namespace") == "hydra", f"{name}: {doc['kind']} outside the hydra namespace"


def test_custom_resources():
    [kustomization] = of_kind("Kustomization")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Everything but the non-KEDA alternative is applied; nothing listed is missing.
    assert listed == on_disk - {"worker-hpa-external.yaml"}
    [scaled] = of_kind("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hydra-worker")
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and float(trigger["metadata"]["threshold"]) > 0
    metrics_source = (Path(__file__).resolve().parents[2] / "hydra" / "broker" / "metrics.py").read_text()
    for metric in re.findall(r"\bhydra_[a-z_]+", trigger["metadata"]["query"]):
        assert f'"{metric}"' in metrics_source, f"the query reads {metric}, which Hydra does not export"
    [hpa] = of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "hydra-worker"


def test_selectors_match_the_pods_they_select():
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in of_kind("Deployment")}
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods[deployment["metadata"]["name"]].items()
    for selecting in (*of_kind("Service"), *of_kind("PodDisruptionBudget")):
        spec = selecting["spec"]
        selector = spec["selector"] if selecting["kind"] == "Service" else spec["selector"]["matchLabels"]
        matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, f"{selecting['kind']}/{selecting['metadata']['name']} selects {matched}"
    for service in of_kind("Service"):
        [deployment] = [
            d
            for d in of_kind("Deployment")
            if service["spec"]["selector"].items() <= pods[d["metadata"]["name"]].items()
        ]
        ports = {p["name"] for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_every_secret_and_config_map_a_pod_reads_exists():
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in of_kind("Secret")}
    maps = {m["metadata"]["name"]: set(m["data"]) for m in of_kind("ConfigMap")}
    for owner, container in containers():
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in maps, owner
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                assert key["key"] in secrets[key["name"]], f"{owner}: {var['name']} reads {key}"
            if "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                assert key["key"] in maps[key["name"]], f"{owner}: {var['name']} reads {key}"


def test_every_hydra_variable_is_a_setting():
    known = {env_name(name) for name in Settings.__dataclass_fields__}
    names = {k for m in of_kind("ConfigMap") for k in m["data"]}
    names |= {var["name"] for _, c in containers() for var in c.get("env", [])}
    assert names - known - NON_HYDRA_ENV == set()


def test_probe_paths_exist_in_the_api_and_in_flower():
    from flower.urls import handlers

    from api import create_app

    app = create_app()
    adapter = app.url_map.bind("localhost")
    flower_paths = {h[0] if isinstance(h, tuple) else h.regex.pattern for h in handlers}
    checked = 0
    for owner, container in containers():
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None or "httpGet" not in probe:
                continue
            path = probe["httpGet"]["path"]
            if owner == "hydra-flower":
                assert path in flower_paths, f"Flower serves no {path}"
            else:
                adapter.match(path, method="GET")  # raises NotFound
                assert path in ("/openapi.json", "/health"), "a probe must need no token"
            checked += 1
    assert checked >= 5


def test_exec_probes_run_what_exists():
    for owner, container in containers():
        probe = container.get("livenessProbe", {}).get("exec")
        if probe is None:
            continue
        argv = probe["command"]
        if argv[:2] == ["python", "-c"]:
            compile(argv[2], owner, "exec")
            for module, names in re.findall(r"from ([\w.]+) import ([\w, ]+)", argv[2]):
                imported = __import__(module, fromlist=["_"])
                for name in names.split(","):
                    assert hasattr(imported, name.strip()), f"{owner}: {module}.{name}"
        else:
            assert "celery -A hydra inspect ping" in argv[-1], owner


def test_commands_name_real_commands_and_queues():
    for owner, container in containers():
        argv = container["command"]
        if argv[0] == "hydra":
            assert argv[1] in hydra_cli.commands, f"{owner}: no `hydra {argv[1]}`"
        elif argv[:4] == ["celery", "-A", "hydra", "worker"]:
            queues = argv[argv.index("-Q") + 1].split(",")
            profile_from_queues("w@h", queues, concurrency=4, platform_os="linux")
            assert argv[argv.index("-n") + 1].endswith("@%h"), "each pod needs its own node name"
            assert "-E" in argv, "the controller needs the workers' events"
        elif argv[0] == "gunicorn":
            assert argv[-1] == "api:create_app()" and "0.0.0.0:8000" in shlex.join(argv)
        else:
            assert argv[:4] == ["celery", "-A", "hydra", "flower"], owner


def test_grace_periods_match_the_rolling_restart_semantics():
    [config] = of_kind("ConfigMap")
    timeout = float(config["data"]["HYDRA_DEFAULT_TIMEOUT"])
    by_name = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    worker = by_name["hydra-worker"]
    # A warm shutdown lets running runs finish; the controller counts one lost only after its
    # timeout plus SHUTDOWN_GRACE: Kubernetes must not kill the worker before that.
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= timeout + SHUTDOWN_GRACE
    rolling = worker["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "capacity must not drop during a rollout"
    controller = by_name["hydra-controller"]
    assert controller["spec"]["replicas"] == 2
    budgets = {b["metadata"]["name"]: b["spec"] for b in of_kind("PodDisruptionBudget")}
    assert budgets["hydra-controller"]["minAvailable"] == 1
    for _, container in containers():
        resources = container["resources"]
        assert resources["requests"] and resources["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_secret_holds_placeholders_only():
    [secret] = of_kind("Secret")
    for key, value in secret["stringData"].items():
        if key != "broker-master-name":
            assert "CHANGE-ME" in value, f"{key} looks like a real secret"
