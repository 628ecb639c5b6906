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


def _commented_commands(text: str) -> list[str]:
    """The documented shell commands: comment lines that run `ray ...` or `sudo ...`."""
    return [ln.lstrip("# ").strip().strip('"') for ln in text.splitlines()
            if ln.lstrip().startswith("#") and ln.lstrip("# ").startswith(("ray ", "- sudo", "- \"mountpoint"))]


def test_cluster_yaml_launches_safely():
    text = (REPO / "cluster.yaml").read_text()
    cfg = yaml.safe_load(text)
    # A failed mount is fatal: no `|| echo` (or any fallback) after a mount, active or documented.
    mounts = [ln for ln in text.splitlines() if "mount -t" in ln]
    assert mounts, "the EFS alternative is documented"
    for line in mounts:
        after = line.split("mount -t", 1)[1]
        assert "||" not in after and "echo" not in after, line
    assert not any("||" in c and "echo" in c for c in cfg.get("initialization_commands") or [])
    # The mount is handed to the container user (uid 1000).
    assert "chown 1000" in text
    # Every documented `ray exec` of a sweep driver runs in tmux: it survives a dropped SSH session
    # (a short one-off such as `data fetch` runs in the foreground, so the sweep starts after it).
    execs = [c for c in _commented_commands(text) if c.startswith("ray exec") and "data fetch" not in c]
    assert execs and all("--tmux" in c for c in execs), execs
    # ray up must not need a local data folder: file_mounts carries only the package source.
    assert list(cfg["file_mounts"].values()) == ["."]
    # S3 is the documented default, EFS the alternative; the resources to create first are named.
    for word in ("S3", "EFS", "bucket", "security group", "file system", "IamInstanceProfile"):
        assert word in text, word
    assert text.index("S3 (the default)") < text.index("EFS (the alternative)")
    # Without EFS nothing is mounted at /mnt/shared (a node-local dir there would hide the mistake).
    assert not any("/mnt/shared" in o for o in cfg["docker"]["run_options"])
    assert not any("/mnt/shared" in c for c in cfg.get("initialization_commands") or [])
