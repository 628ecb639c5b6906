"""Every command of the README's "Sweeps on a cluster" section, checked where it can run here.

- `aws iam` / `aws ec2 describe-images`: run (the AWS CLI, in-process) against a loopback AWS
  (moto's server: IAM, EC2, S3 on 127.0.0.1); then Ray's own AWS bootstrap (`ray up`'s config
  stage) and node launches read cluster.yaml there: every node type starts with the instance
  profile those commands made, in a security group that opens only SSH.
- `ray exec cluster.yaml '<sracl-ray ...>'`: the inner command runs in-process against a
  multi-node loopback cluster shaped like cluster.yaml's (a CPU: 0 head this process finds
  running, as `ray exec` does on the head, plus workers), with the loopback S3 bucket in place of
  s3://YOUR-BUCKET and a temp HOME in place of /home/ray (~/sracl-ray is this checkout).
- `sracl-ray results/report/version`: run in-process too; `sracl-ray reproduce --smoke` is run by
  tests/sweeps/test_reproduce.py (slow tier) and only parsed here.
- `ray up/attach/dashboard/down` need AWS: parsed by Ray's own CLI (the options exist).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from test_cluster_yaml import (
    CLUSTER_YAML,
    PROFILE,
    listed_placeholders,
    readme_cluster_section,
)

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's account id, for YOUR_ACCOUNT_ID
BUCKET = "sracl-readme"  # for YOUR-BUCKET
SWEEP_COMMANDS = ("sweep run", "sweep resume")  # the drivers: must run under ray exec --tmux
RUN_HERE = ("data fetch", "sweep run", "sweep resume", "results", "report", "version")
RUN_ELSEWHERE = {"reproduce": REPO / "tests" / "sweeps" / "test_reproduce.py"}
RAY_NEEDS_AWS = ("up", "attach", "dashboard", "down")


def readme_commands() -> list[str]:
    """The shell commands of the section's bash blocks, one per command (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", readme_cluster_section(), flags=re.DOTALL)
    assert blocks
    return [ln.strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines() if ln.strip()]


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def ray_params(argv: list[str]) -> dict:
    """Ray's own CLI parses `ray SUB ...` (click; nothing runs): its parameters."""
    from ray.scripts.scripts import cli

    assert argv[0] in cli.commands, argv
    return cli.commands[argv[0]].make_context(argv[0], argv[1:]).params


def sracl_subcommand(argv: list[str]) -> str:
    """The sub-command argv names, checked by the real parser: `sweep run`, `results`, ..."""
    from sracl_ray.cli import build_parser

    args = build_parser(argv).parse_args(argv)  # exits (a failed test) on an unknown option
    return " ".join(a for a in (args.command, getattr(args, "sweep_command", None), getattr(args, "data_command", None))
                    if a)


def inner_commands() -> list[list[str]]:
    """Every sracl-ray command of the section: top-level ones and those `ray exec` runs on the head."""
    out = []
    for cmd in readme_commands():
        w = words(cmd)
        if w[0] == "sracl-ray":
            out.append(w[1:])
        elif w[:2] == ["ray", "exec"]:
            inner = words(ray_params(w[1:])["cmd"])
            assert inner[0] == "sracl-ray", cmd
            out.append(inner[1:])
    return out


def test_every_readme_cluster_command_parses_and_has_a_check():
    commands = readme_commands()
    programs = {words(c)[0] for c in commands}
    assert programs == {"aws", "ray", "sracl-ray"}, programs
    for cmd in commands:
        w = words(cmd)
        if w[0] == "ray":
            params = ray_params(w[1:])
            assert params["cluster_config_file"] == "cluster.yaml", cmd
            if w[1] == "exec":
                inner = words(params["cmd"])
                sub = sracl_subcommand(inner[1:])
                assert sub in RUN_HERE, cmd
                if sub in SWEEP_COMMANDS:  # a driver survives a dropped SSH connection
                    assert params["tmux"], cmd
            else:
                assert w[1] in RAY_NEEDS_AWS, cmd
        elif w[0] == "sracl-ray":
            sub = sracl_subcommand(w[1:])
            assert sub in RUN_HERE or sub in RUN_ELSEWHERE, cmd
            if sub in RUN_ELSEWHERE:
                text = RUN_ELSEWHERE[sub].read_text()
                assert f'"{sub}", "--smoke"' in text and "def test_" in text, sub
        else:
            assert w[1] in ("iam", "ec2"), cmd  # run by the next test
    # the order users follow: the version record before ray up; the data before the sweep
    first = [words(c)[:3] for c in commands if words(c)[0] != "aws"]
    assert first[0] == ["sracl-ray", "version", "--write"] and first[1] == ["ray", "up", "cluster.yaml"], first
    subs = [sracl_subcommand(a) for a in inner_commands()]
    assert subs.index("data fetch") < subs.index("sweep run") < subs.index("sweep resume") < subs.index("results")


def fill_placeholders(text: str, images: dict[str, str]) -> str:
    """cluster.yaml / README text with every listed placeholder replaced by a loopback value."""
    values = {"YOUR_ACCOUNT_ID": ACCOUNT, "YOUR-BUCKET": BUCKET, **images}
    for p in listed_placeholders():
        if p in values:
            text = text.replace(p, values[p])
    return text


@pytest.fixture
def aws(tmp_path, monkeypatch):
    """A loopback AWS (moto's server) in this process's environment; HOME is a temp dir (Ray's
    bootstrap writes the SSH key it creates to ~/.ssh)."""
    from s3server import S3Server

    server = S3Server()
    for k, v in {**server.env(), "AWS_DEFAULT_REGION": "us-west-2", "AWS_REGION": "us-west-2",
                 "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "home").mkdir()
    yield server
    server.stop()


def test_readme_aws_commands_make_the_profile_that_cluster_yaml_launches_with(aws, capsys):
    pytest.importorskip("awscli")
    import boto3
    from awscli.clidriver import create_clidriver

    aws_commands = [words(fill_placeholders(c, {})) for c in readme_commands() if c.startswith("aws ")]
    assert [w[1:3] for w in aws_commands] == [["iam", "create-role"], ["iam", "put-role-policy"],
                                              ["iam", "create-instance-profile"],
                                              ["iam", "add-role-to-instance-profile"],
                                              ["ec2", "describe-images"], ["ec2", "describe-images"]]
    for w in aws_commands:  # the AWS CLI's own parsing; moto checks the policy documents' syntax
        assert create_clidriver().main(w[1:]) == 0, w
    capsys.readouterr()

    policy = json.loads(aws_commands[1][aws_commands[1].index("--policy-document") + 1])
    allowed = {a for s in policy["Statement"] if s["Effect"] == "Allow"
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # Ray's AWS node provider on the head: launch, tag, look up, terminate; hand the role to workers.
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags", "ec2:Describe*", "iam:PassRole"} <= allowed
    passrole = next(s for s in policy["Statement"] if s["Action"] == "iam:PassRole")
    assert passrole["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/{PROFILE}"
    # the sweeps' storage: list the bucket, read and write (and delete) its objects
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= allowed
    resources = {r for s in policy["Statement"] if any(str(a).startswith("s3:") for a in s["Action"])
                 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    uris = set(re.findall(r"s3://[\w.-]+", fill_placeholders(readme_cluster_section(), {})))
    assert uris == {f"s3://{BUCKET}"}, uris  # every URI the commands use is in the bucket the policy names

    # `ray up`'s config stage (Ray's AWS bootstrap), then one node of each type launched as the
    # autoscaler launches it; the AMI placeholders take images the loopback EC2 knows.
    ec2 = boto3.client("ec2", region_name="us-west-2")
    known = [i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"][:2]]
    cfg = yaml.safe_load(fill_placeholders(CLUSTER_YAML.read_text(), {
        "ami-REPLACE_WITH_DLAMI_ID": known[0], "ami-REPLACE_WITH_UBUNTU_ID": known[1]}))
    assert not re.search(r"YOUR|REPLACE_WITH", json.dumps(cfg)), "an unlisted placeholder in cluster.yaml"
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(cfg)
    validate_config(prepared)  # what `ray up` does before bootstrapping
    booted = bootstrap_aws(prepared)
    provider = AWSNodeProvider(booted["provider"], booted["cluster_name"])
    for name, node_type in booted["available_node_types"].items():
        provider.create_node(node_type["node_config"], {"ray-node-kind": "worker", "ray-user-node-type": name,
                                                        "ray-node-name": f"ray-sracl-ray-{name}"}, 1)
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    by_type = {i["InstanceType"]: i for i in instances}
    want = {t["node_config"]["InstanceType"]: t["node_config"]["ImageId"] for t in cfg["available_node_types"].values()}
    assert {k: v["ImageId"] for k, v in by_type.items()} == want
    profile_arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/{PROFILE}"
    assert {i["IamInstanceProfile"]["Arn"] for i in instances} == {profile_arn}  # moto refuses an unknown one
    groups = {g["GroupId"] for i in instances for g in i["SecurityGroups"]}
    assert len(groups) == 1
    (group,) = ec2.describe_security_groups(GroupIds=list(groups))["SecurityGroups"]
    assert group["GroupName"] == cfg["provider"]["security_group"]["GroupName"]
    for rule in group["IpPermissions"]:  # SSH from anywhere, anything only from the group itself
        if rule.get("IpRanges") or rule.get("Ipv6Ranges"):
            assert (rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort")) == ("tcp", 22, 22), rule
        else:
            assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [group["GroupId"]], rule


def shell_word(word: str, home: Path, bucket_uri: str) -> str:
    """What the head's shell and the filled-in placeholders make of one word of an inner command."""
    word = word.replace("s3://YOUR-BUCKET", bucket_uri)
    return str(home / word[2:]) if word.startswith("~/") else word


@pytest.mark.parametrize("engine", ["fake", pytest.param("real", marks=pytest.mark.slow)])
def test_readme_sweep_commands_run_on_a_loopback_cluster(engine, tmp_path, monkeypatch, capsys):
    """data fetch -> sweep run -> sweep resume -> results -> report, as the README writes them, on a
    3-node loopback cluster with storage in a loopback S3 bucket.  `sweep run` gets --smoke added:
    the ablation's 50 trials of 2 CPUs + 0.25 GPU each do not fit 1-CPU loopback nodes.  The fast
    tier trains with the test engine (sweep_fakes: fit()'s contract in milliseconds; about 30 s in
    all on 2 cores); `-m slow` with the real one (about 60 s)."""
    import ray
    from s3server import S3Server
    from test_multinode import loopback_cluster

    from sracl_ray.cli import main
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.results.store import read_store
    from sracl_ray.sweeps.experiment import load_experiment
    from sracl_ray.version import code_version
    from tests.data.fetch_mirror import make_env

    if engine == "fake":
        import sweep_fakes

        from sracl_ray.sweeps import runner

        monkeypatch.setattr(runner, "default_engine", sweep_fakes.fake_engine)
    home = tmp_path / "home"  # /home/ray on the head
    home.mkdir()
    (home / "sracl-ray").symlink_to(REPO)  # cluster.yaml file_mounts: the checkout at ~/sracl-ray
    mirror = make_env(tmp_path, monkeypatch).mirror  # the dataset's hosts, on loopback
    s3 = S3Server()
    bucket_uri = s3.bucket(f"{BUCKET}-{engine}")  # moto keeps buckets for the whole process
    monkeypatch.chdir(tmp_path)
    env = {**s3.env(), "HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "SRACL_SCRATCH": str(tmp_path / "scratch"), "SRACL_DATA_BASE_URL": mirror.url}
    commands = [[shell_word(w, home, bucket_uri) for w in argv] for argv in inner_commands()]
    by_name = {}
    for argv in commands:
        by_name.setdefault(sracl_subcommand(argv), argv)
    try:
        with loopback_cluster(env, head_cpus=0, workers=2, connect=False) as (cluster, _):
            assert main(by_name["data fetch"]) == 0
            exp_file = Path(by_name["sweep run"][2])
            data_path = yaml.safe_load(exp_file.read_text())["base"]["data"]["path"]
            assert (home / data_path.removeprefix("~/")) == Path(by_name["data fetch"][by_name["data fetch"].index("--to")
                                                                                      + 1])
            fetched = load_dataset(load_experiment(exp_file).base_config().data)  # where the experiment file reads it
            assert fetched.n_users == 5  # the mirror's fixture release

            capsys.readouterr()
            assert main(by_name["sweep run"] + ["--smoke"]) == 0, capsys.readouterr()
            out = capsys.readouterr().out
            storage = by_name["sweep run"][by_name["sweep run"].index("--storage") + 1]
            assert f"{storage}: 2 trials, 2 finished, 0 errored" in out, out
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            assert ray._private.worker._global_node.gcs_address == cluster.address  # joined, as on the head
            rows = read_store(storage)
            assert len(rows) == 2 and set(rows["node_id"]) <= alive
            assert set(rows["code_version"]) == {code_version() if engine == "real" else "test"}

            assert main(by_name["sweep resume"]) == 0
            assert "2 trials, 2 finished, 0 errored" in capsys.readouterr().out
            assert main(by_name["results"]) == 0
            table = capsys.readouterr().out
            assert "full" in table and "no_cl" in table, table
            assert main(by_name["report"]) == 0
            report_dir = Path(by_name["report"][by_name["report"].index("--out") + 1])
            assert (tmp_path / report_dir / "index.html").is_file()
    finally:
        s3.stop()
        mirror.close()

    # `sracl-ray version --write` where README runs it: the top of a git checkout
    checkout = tmp_path / "checkout"
    (checkout / "sracl_ray").mkdir(parents=True)
    (checkout / "sracl_ray" / "__init__.py").write_text("")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, capture_output=True)
    monkeypatch.chdir(checkout)
    assert main(by_name["version"]) == 0
    assert (checkout / "sracl_ray" / "BUILD_VERSION").is_file()
    shutil.rmtree(checkout)


def test_gpu_wait_asks_the_autoscaler_for_a_gpu_node():
    """cluster.yaml's GPU workers have min_workers 0, so no GPU node exists until something asks for
    one: while a sweep waits for a GPU, the driver's request is in the GCS key the autoscaler reads
    (request_resources), and it is withdrawn once the wait ends."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get
    from test_multinode import loopback_cluster

    from sracl_ray.sweeps import runner

    def request():
        raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
        return json.loads(raw) if raw else None

    with loopback_cluster({}, head_cpus=1, workers=0) as (cluster, _):
        got: list[float] = []
        waiter = threading.Thread(target=lambda: got.append(runner.effective_gpus(0.25, wait_s=120)))
        waiter.start()
        deadline = time.monotonic() + 30
        while request() != [{"GPU": 0.25}] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert request() == [{"GPU": 0.25}]
        cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address="127.0.0.1")  # the autoscaler's answer
        waiter.join(60)
        assert got == [0.25]
        assert request() == []  # withdrawn: from now on the trials' own demand scales the cluster
