"""cluster.yaml (AWS) and cluster-local.yaml (your own machines) pass the checks `ray up` runs
before it touches a provider. ``test_ray_up.py`` brings cluster-local.yaml up for real."""
from __future__ import annotations

import copy
import json
import os

import jsonschema
import pytest
import yaml

from tests.conftest import REPO


def load_cluster_yaml(name: str = "cluster.yaml"):
    with open(REPO / name) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_yaml_passes_ray_schema(name):
    import ray.autoscaler

    schema_path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(load_cluster_yaml(name))]
    assert errors == []


def test_cluster_yaml_passes_ray_up_validation():
    # The same two steps `ray up` runs in commands._bootstrap_config before the provider is used.
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(load_cluster_yaml()))
    validate_config(config)
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["cpu_worker"]["max_workers"] >= 1
    assert any("pip install" in c and "katoray" in c for c in config["setup_commands"])
    assert any("--address=$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])


def test_validation_catches_a_typo():
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = copy.deepcopy(load_cluster_yaml())
    bad["setup_comands"] = bad.pop("setup_commands")
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config(bad))


def test_the_on_premises_config_passes_ray_up_validation():
    """Ray's local provider: one node type of its own, as many workers as addresses listed."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load_cluster_yaml("cluster-local.yaml")
    assert raw["provider"]["type"] == "local" and "available_node_types" not in raw
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    workers = config["available_node_types"]["local.cluster.node"]
    assert workers["min_workers"] == workers["max_workers"] == len(raw["provider"]["worker_ips"])
    assert any("pip install" in c and "katoray" in c for c in config["setup_commands"])
    assert any("--address=$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])
