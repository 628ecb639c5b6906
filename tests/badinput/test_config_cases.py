"""Bad inputs to config, train, checkpoints and sweeps: one line naming the culprit, exit 2, nothing written.

Each case runs the real CLI (tests/badinput/harness.py).  Errors must come before any data is
read or any output is created, so every case takes about one interpreter start-up.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput.harness import Case, check_case, run_cli

FAST = ["--set", "data.max_users=40", "--set", "train.epochs=1", "--set", "train.progress=false",
        "--set", "cl.variant=no_cl", "--set", "train.num_threads=1"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def experiment(tmp: Path, metric: str = "valid/ndcg@20", extra: str = "") -> Path:
    return write(tmp / "exp.yaml", f"""name: t
base:
  data: {{max_users: 40}}
  train: {{epochs: 1, progress: false}}
search:
  mode: grid
  grid: {{cl.variant: [no_cl]}}
metric: {metric}
{extra}""")


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


CASES = [
    # --- config values: non-finite, unknown, impossible (all before any data is read)
    Case("alpha_inf", ["train", "--out", "{tmp}/run", "--set", "cl.alpha=inf"], ["cl.alpha", "finite"]),
    Case("beta_nan", ["train", "--out", "{tmp}/run", "--set", "cl.beta=.nan"], ["cl.beta", "finite"]),
    Case("lr_inf_yaml", ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/run"], ["c.yaml", "line 2", "train.lr"],
         setup=lambda t: write(t / "c.yaml", "train:\n  lr: .inf\n")),
    Case("metric_unknown", ["train", "--out", "{tmp}/run", "--set", "train.metric=valid/foo"], ["train.metric", "valid/foo"]),
    Case("metric_k_unknown", ["train", "--out", "{tmp}/run", "--set", "train.metric=valid/ndcg@25"], ["train.metric"]),
    Case("metric_test", ["train", "--out", "{tmp}/run", "--set", "train.metric=test/hr@10"], ["train.metric", "valid/"]),
    Case("device_bogus", ["train", "--out", "{tmp}/run", "--set", "train.device=tpu"], ["train.device"]),
    Case("format_bogus", ["train", "--out", "{tmp}/run", "--set", "data.format=csv"], ["data.format"]),
    Case("ties_bogus", ["train", "--out", "{tmp}/run", "--set", "eval.ties=random"], ["eval.ties"]),
    Case("moved_mask_history", ["train", "--out", "{tmp}/run", "--set", "train.mask_history=true"],
         ["mask_history", "eval.mask_history"]),
    Case("moved_eval_batch", ["train", "--out", "{tmp}/run", "--set", "train.eval_batch_size=8"],
         ["eval_batch_size", "eval.batch_size"]),
    Case("unknown_section", ["train", "--out", "{tmp}/run", "--set", "optim.lr=0.1"], ["optim"]),
    Case("set_without_equals", ["train", "--out", "{tmp}/run", "--set", "cl.alpha"], ["cl.alpha"]),
    Case("int_not_int", ["train", "--out", "{tmp}/run", "--set", "cl.k=2.5"], ["cl.k"]),
    Case("num_threads_negative", ["train", "--out", "{tmp}/run", "--set", "train.num_threads=-1"], ["train.num_threads"]),
    Case("config_missing", ["train", "--config", "{tmp}/nope.yaml", "--out", "{tmp}/run"], ["nope.yaml"]),
    Case("config_bad_yaml", ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/run"], ["c.yaml", "line"],
         setup=lambda t: write(t / "c.yaml", "train: {lr: 0.1\n  epochs: [\n")),
    Case("config_not_mapping", ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/run"], ["c.yaml", "mapping"],
         setup=lambda t: write(t / "c.yaml", "- 1\n- 2\n")),
    Case("experiment_base_typo", ["train", "--config", "{tmp}/exp.yaml", "--out", "{tmp}/run"],
         ["exp.yaml", "line 4", "epochz"],
         setup=lambda t: write(t / "exp.yaml", "name: t\nbase:\n  train:\n    epochz: 1\nsearch: {mode: grid}\n")),
    # --- hostile YAML and values (issue 15): duplicate keys, anchor bombs, seeds
    Case("duplicate_key_section", ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/run"],
         ["c.yaml", "line 3", "duplicate key 'train'", "first at line 1"],
         setup=lambda t: write(t / "c.yaml", "train:\n  epochs: 1\ntrain:\n  lr: 0.1\n")),
    Case("yaml_anchor_bomb", ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/run"],
         ["c.yaml", "line 1", "anchors and aliases", "refused"],
         setup=lambda t: write(t / "c.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
             f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
             for p, c in zip("abcdefgh", "bcdefghi")) + "data:\n  name: *i\n")),
    Case("set_alias", ["train", "--out", "{tmp}/run", "--set", "data.name=&x [*x]"], ["--set", "data.name", "aliases"]),
    Case("seed_beyond_int64", ["train", "--out", "{tmp}/run", "--set", "train.seed=99999999999999999999"],
         ["train.seed", "out of range"]),
    Case("seed_negative", ["train", "--out", "{tmp}/run", "--set", "train.seed=-1"], ["train.seed", "out of range"]),
    Case("out_is_file", ["train", "--out", "{tmp}/afile", *FAST], ["afile", "not a directory"],
         setup=lambda t: write(t / "afile", "x")),
    Case("usage_error", ["train"], ["--out"]),
    Case("unknown_subcommand", ["trian"], ["trian"]),
    # --- sweeps: validated before Ray starts or any storage is created
    Case("sweep_metric_unknown", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s"], ["exp.yaml", "valid/ndcg@25"],
         setup=lambda t: experiment(t, "valid/ndcg@25")),
    Case("sweep_metric_test", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s"], ["exp.yaml", "metric"],
         setup=lambda t: experiment(t, "test/ndcg@20")),
    Case("sweep_mode_bad", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s"], ["exp.yaml", "mode"],
         setup=lambda t: experiment(t, extra="mode: maximise\n")),
    Case("sweep_grid_alpha_inf", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s"], ["cl.alpha", "finite"],
         setup=lambda t: write(t / "exp.yaml", "name: t\nsearch:\n  mode: grid\n  grid: {cl.alpha: [0.1, .inf]}\n")),
    Case("sweep_two_grid_keys", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s"],
         ["exp.yaml", "line 5", "duplicate key 'grid'", "first at line 4"],
         setup=lambda t: write(t / "exp.yaml", "name: t\nsearch:\n  mode: grid\n  grid: {cl.variant: [no_cl]}\n"
                                              "  grid: {train.seed: [1]}\n")),
    Case("sweep_storage_is_file", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/afile", "--num-cpus", "1"],
         ["afile", "not a directory"], setup=lambda t: (experiment(t), write(t / "afile", "x"))[1].name),
    Case("sweep_storage_has_finished", ["sweep", "run", "{tmp}/exp.yaml", "--storage", "{tmp}/s", "--num-cpus", "1"],
         ["already holds a sweep", "sweep resume", "--overwrite"],
         setup=lambda t: (experiment(t), write(t / "s" / "sweep.json", "{}"),
                          write(t / "s" / "results" / "trial-x.parquet", "x"))[1].parent.name),
    Case("sweep_resume_not_a_sweep", ["sweep", "resume", "{tmp}"], ["sweep.json"]),
    Case("reproduce_only_unknown", ["reproduce", "--storage", "{tmp}/r", "--experiments", "{tmp}/e", "--only", "nope"],
         ["--only", "nope"], setup=lambda t: experiment(t / "e") and None),
]
if not cuda_available():
    CASES.append(Case("device_cuda_without_gpu", ["train", "--out", "{tmp}/run", "--set", "train.device=cuda"],
                      ["train.device", "no CUDA"]))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_input(case: Case, tmp_path: Path):
    check_case(case, tmp_path)


def test_debug_flag_after_subcommand_shows_the_traceback(tmp_path):
    proc = run_cli(["train", "--out", str(tmp_path / "run"), "--set", "cl.alpha=inf", "--debug"], tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "cl.alpha" in proc.stderr
    proc = run_cli(["train", "-v", "--out", str(tmp_path / "run"), "--set", "cl.alpha=inf"], tmp_path)
    assert "Traceback" in proc.stderr
