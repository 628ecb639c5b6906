"""cluster.yaml as Ray's AWS launcher reads it: the schema inside the installed ray, Ray's own config
preparation, and what `ray up` needs of it (one instance profile, an image per node type, a CPU
head image, GPU workers on demand, SSH only, the code version shipped).  Ray's AWS bootstrap and
node launches against a loopback AWS are in test_readme_cluster.py, with the README's commands.
"""
from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
PROFILE = "sracl-ray-node"
# What a placeholder looks like: YOUR_X / YOUR-X, ami-REPLACE_WITH_X, fs-XXXX.
PLACEHOLDER = re.compile(r"\bYOUR[-_][A-Z0-9_-]*[A-Z0-9]|\bami-REPLACE_WITH_[A-Z_]+|\bfs-X{4,}")


def load_cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def listed_placeholders(text: str | None = None) -> list[str]:
    """The placeholders cluster.yaml's header lists (`#   TOKEN   what it is`), in order."""
    lines = (text or CLUSTER_YAML.read_text()).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# Placeholders"))
    block = []
    for ln in lines[start + 1:]:
        if ln.strip() == "#":
            break
        block.append(ln)
    return [m.group(1) for ln in block if (m := re.match(r"^#   (\S+)\s{2,}", ln))]


def readme_cluster_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Sweeps on a cluster")
    return text[start:text.index("\n## ", start + 1)]


def node_image(cfg: dict, node_type: str) -> str:
    """The image a node type's container runs, merged as Ray's autoscaler does (the global docker
    section updated by the node type's, then `head_image`/`worker_image` before `image`)."""
    docker = {**cfg.get("docker", {}), **cfg["available_node_types"][node_type].get("docker", {})}
    role = "head" if node_type == cfg["head_node_type"] else "worker"
    return docker.get(f"{role}_image", docker.get("image"))


def test_cluster_yaml_matches_ray_schema_and_ray_prepares_it():
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = load_cluster()
    jsonschema.validate(cfg, schema)
    prepared = prepare_config(copy.deepcopy(cfg))  # defaults merged, docker checked, min/max per type
    validate_config(prepared)
    types = prepared["available_node_types"]
    assert types[cfg["head_node_type"]]["max_workers"] == 0  # Ray never launches the head type as a worker
    assert {t: types[t]["min_workers"] for t in types if t != cfg["head_node_type"]} == {
        "worker.gpu": 0, "worker.cpu": 0}


def test_every_node_type_is_wired_for_aws():
    import ray

    cfg = load_cluster()
    types = cfg["available_node_types"]
    head = cfg["head_node_type"]
    # One instance profile, named as README's `aws iam create-instance-profile` names it.
    profiles = {t: types[t]["node_config"].get("IamInstanceProfile") for t in types}
    arns = {p["Arn"] if p else None for p in profiles.values()}
    assert len(arns) == 1, profiles
    arn = arns.pop()
    assert re.fullmatch(rf"arn:aws:iam::YOUR_ACCOUNT_ID:instance-profile/{PROFILE}", arn), arn
    assert f"--instance-profile-name {PROFILE}" in readme_cluster_section()
    # An image per node type: the GPU image on GPU workers, Ubuntu on the CPU nodes.
    gpu_types = [t for t in types if types[t]["resources"].get("GPU", 0) >= 1]
    assert gpu_types == ["worker.gpu"] and types[head]["resources"].get("GPU", 0) == 0
    for t in types:
        want = "ami-REPLACE_WITH_DLAMI_ID" if t in gpu_types else "ami-REPLACE_WITH_UBUNTU_ID"
        assert types[t]["node_config"].get("ImageId") == want, t
    # Container images: CPU for the head and CPU workers, Ray's LLM CUDA image for GPU workers,
    # every tag on the installed Ray and one Python.
    images = {t: node_image(cfg, t) for t in types}
    assert images[head] == images["worker.cpu"] == f"rayproject/ray:{ray.__version__}-py311-cpu", images
    assert re.fullmatch(rf"rayproject/ray-llm:{re.escape(ray.__version__)}-py311-cu\d+", images["worker.gpu"]), images
    # No GPU instance kept while idle; idle workers end.
    assert all(types[t].get("min_workers", 0) == 0 for t in types if t != head)
    assert cfg["idle_timeout_minutes"] > 0
    # The Ubuntu image has no docker: the first command installs it, and only where it is missing.
    first = cfg["initialization_commands"][0]
    assert first.startswith("command -v docker >/dev/null ||") and "docker.io" in first
    assert any("pip install" in c and "sracl-ray" in c for c in cfg["setup_commands"])


def test_only_ssh_is_opened():
    cfg = load_cluster()
    assert "IpPermissions" not in cfg["provider"].get("security_group", {})  # Ray's defaults only
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])
    text = CLUSTER_YAML.read_text()
    assert "0.0.0.0" not in text
    ports = {int(p) for p in re.findall(r"--(?:port|[a-z-]+-port)=(\d+)", " ".join(
        cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]))}
    assert ports <= {6379, 8076}  # Ray's own ports, between the nodes (the security group's intra-group rule)


def test_the_code_version_reaches_the_nodes():
    """The nodes get the checkout without .git/: sracl_ray/BUILD_VERSION must travel (rsync keeps
    it, the package installs it as package data) and stay out of git."""
    import tomllib

    from sracl_ray import version

    cfg = load_cluster()
    assert list(cfg["file_mounts"].values()) == ["."] and ".git/" in cfg["rsync_exclude"]
    assert "rsync_filter" not in cfg  # [.gitignore] there would leave the gitignored record behind
    record = f"{version.PACKAGE}/{version.RECORD_FILENAME}"
    assert not [x for x in cfg["rsync_exclude"] if fnmatch.fnmatch(record, x.rstrip("/"))
                or fnmatch.fnmatch(version.RECORD_FILENAME, x) or record.startswith(x)], cfg["rsync_exclude"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert version.RECORD_FILENAME in pyproject["tool"]["setuptools"]["package-data"][version.PACKAGE]
    assert f"/{record}" in (REPO / ".gitignore").read_text().splitlines()
    assert "sracl-ray version --write" in CLUSTER_YAML.read_text()


def test_placeholders_are_listed_in_one_place():
    """Every placeholder in cluster.yaml and the README's cluster section is in cluster.yaml's list,
    and every listed one is used; the image look-up commands are the same in both."""
    yaml_text, readme = CLUSTER_YAML.read_text(), readme_cluster_section()
    listed = listed_placeholders(yaml_text)
    assert listed and len(set(listed)) == len(listed), listed
    found = set(PLACEHOLDER.findall(yaml_text)) | set(PLACEHOLDER.findall(readme))
    assert found == set(listed), (sorted(found), listed)
    values = json.dumps(load_cluster())  # the parsed config: what Ray sees
    assert {p for p in listed if p in values} == {"YOUR_ACCOUNT_ID", "ami-REPLACE_WITH_DLAMI_ID",
                                                  "ami-REPLACE_WITH_UBUNTU_ID"}
    for image in ("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)", "ubuntu-jammy-22.04"):
        yaml_cmd = [ln.lstrip("# ").strip() for ln in yaml_text.splitlines() if "describe-images" in ln and image in ln]
        readme_cmd = [ln.strip() for ln in readme.splitlines() if ln.startswith("aws ec2 describe-images")
                      and image in ln]
        assert len(yaml_cmd) == len(readme_cmd) == 1 and yaml_cmd == readme_cmd, (yaml_cmd, readme_cmd)


def test_cluster_yaml_launches_safely():
    text = CLUSTER_YAML.read_text()
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
    # ray up must not need a local data folder: file_mounts carries only the package source.
    assert list(cfg["file_mounts"].values()) == ["."]
    # S3 is the documented default, EFS the alternative; the resources to create first are named.
    for word in ("S3", "EFS", "bucket", "security group", "file system", "IamInstanceProfile"):
        assert word in text, word
    assert text.index("S3 (the default)") < text.index("EFS (the alternative)")
    # Without EFS nothing is mounted at /mnt/shared (a node-local dir there would hide the mistake).
    assert not any("/mnt/shared" in o for o in cfg["docker"]["run_options"])
    assert not any("/mnt/shared" in c for c in cfg.get("initialization_commands") or [])
