"""cluster.yaml validates against the cluster-config schema shipped inside the installed ray."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_cluster_yaml_matches_ray_schema():
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(cfg, schema)
    # GPU workers + a CPU head; the LLM image family; the package installed on every node.
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"].get("GPU", 0) == 0
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())
    assert cfg["docker"]["image"].startswith("rayproject/ray-llm:")
    assert any("pip install" in c and "sracl-ray" in c for c in cfg["setup_commands"])
    assert cfg["file_mounts"]
    # Nothing but Ray's defaults (SSH + intra-cluster) is opened; the dashboard stays on localhost.
    assert "IpPermissions" not in cfg["provider"].get("security_group", {})
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])
    assert "0.0.0.0" not in (REPO / "cluster.yaml").read_text()
