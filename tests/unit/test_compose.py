"""docker-compose.replicaset.yml (MongoDB as a replica set) fits docker-compose.yml: it
overrides services that exist, every Hydra service gets the replica-set URL, and that URL
names every member, the set and majority writes. (No Docker on this project's machines:
this checks the files, not a running set.)"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
RS = yaml.safe_load((REPO / "docker-compose.replicaset.yml").read_text())
HYDRA_SERVICES = {"init", "api", "controller", "worker", "gpu-worker", "flower"}


def test_the_override_names_services_of_the_base_file_or_its_own_members():
    added = {"mongo-keyfile", "mongo2", "mongo3"}
    assert set(RS["services"]) - added <= set(BASE["services"])
    assert set(RS["services"]) >= HYDRA_SERVICES and set(BASE["services"]) >= HYDRA_SERVICES


def test_every_hydra_service_reaches_the_set_with_majority_writes():
    members = {"mongo", "mongo2", "mongo3"}
    for name in HYDRA_SERVICES:
        url = RS["services"][name]["environment"]["HYDRA_MONGO_URL"]
        parts = urlsplit(url.replace("${HYDRA_MONGO_PASSWORD:?set HYDRA_MONGO_PASSWORD}", "pw"))
        hosts = {h.split(":")[0] for h in parts.netloc.split("@", 1)[1].split(",")}
        query = parse_qs(parts.query)
        assert hosts == members, name
        assert query["replicaSet"] == ["rs0"] and query["w"] == ["majority"] and query["readPreference"] == ["primary"]


def test_members_form_one_set_with_a_shared_key():
    for name in ("mongo", "mongo2", "mongo3"):
        command = RS["services"][name]["command"]
        assert command[command.index("--replSet") + 1] == "rs0"
        assert "--keyFile" in command
        assert any(v.startswith("mongo-keys:/keys") for v in RS["services"][name]["volumes"])
    initiate = " ".join(RS["services"]["mongo"]["healthcheck"]["test"])
    for host in ("mongo:27017", "mongo2:27017", "mongo3:27017"):
        assert host in initiate
