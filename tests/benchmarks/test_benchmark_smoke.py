"""Every benchmarks/*.py runs with --smoke (seconds, CPU, no download) and writes a complete result
JSON: so a benchmark broken by a refactor fails here, not when someone next needs its figures.

New scripts are picked up by the glob; files starting with "_" are the scripts' shared helpers.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
VECTOR_FLAGS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
MACHINE_KEYS = {"cpu_model", "vector_extensions", "cores", "load_avg_start", "load_avg_end", "torch", "numpy", "gpu"}
# The figures each script must record: what it measured, its same-run reference and their ratio.
# A script not listed here still runs, and must write a complete JSON with some results.
EXPECTED = {
    "epoch_speed": {"engine_samples_per_s", "reference_samples_per_s", "speedup_vs_reference",
                    "reference_dataset_build_s"},
    "embed_speed": {"reference_sentences_per_s", "encoder_sentences_per_s", "ray_stage_sentences_per_s",
                    "encoder_vs_reference", "ray_stage_vs_reference"},
    "gpu_check": {"epoch_s[trim,fp32]", "eval_all_users_s", "reference_dataset_build_s", "reference_timed_s",
                  "reference_epoch_s_extrapolated", "speedup_vs_reference[trim,fp32]", "sasrec_test/hr@10"},
    "gpu_packing": {"packing_samples_per_s[1 proc]", "packing_samples_per_s[2 procs]", "packing_ratio"},
    "neighbours_speed": {"reference_s_extrapolated", "topk_s", "speedup_vs_reference", "method_used",
                         "check_rows_differing"},
    "openai_throughput": {"direct_tok_per_s", "ours_tok_per_s", "ratio_ours_vs_direct"},
    "sweep_overhead": {"sequential_s", "sweep_s", "overhead_ratio"},
    "study_tables": {"arms", "comparisons", "determinism_no_cl"},  # benchmarks/REPRODUCTION.md
    "quickstart_time": {"quickstart_s", "exit_code", "arm[full]", "arm[no_cl]", "baseline[popularity]",
                        "baseline[random]"},
    "reproduce_gpu": {"artifact_build_s", "trials", "n_ok", "study_wall_s"},  # tests/benchmarks/test_reproduce_gpu_smoke.py
}
RATIOS = {"speedup_vs_reference", "encoder_vs_reference", "speedup_vs_reference[trim,fp32]", "packing_ratio",
          "ratio_ours_vs_direct", "overhead_ratio"}


def _env() -> dict:
    env = {**os.environ, "SRACL_RAY_NUM_CPUS": "1", "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_expected_scripts_exist():
    """A renamed or deleted benchmark must be renamed here too (new ones are run without listing)."""
    assert set(EXPECTED) | set(SMOKED_ELSEWHERE) <= {p.stem for p in SCRIPTS}


# Scripts whose smoke run another test drives in-process (and checks with check_record), so the
# default tier does not pay for them twice.
SMOKED_ELSEWHERE = {"quickstart_time": "tests/sweeps/test_quickstart.py",
                    "reproduce_gpu": "tests/benchmarks/test_reproduce_gpu_smoke.py"}


def check_record(rec: dict, stem: str) -> None:
    """A smoke run's JSON is complete: script, command, date, machine, the expected figures."""
    assert rec["script"] == stem and rec["smoke"] is True and rec["complete"] is True
    assert rec["command"].startswith(f"python benchmarks/{stem}.py ") and "--smoke" in rec["command"]
    datetime.datetime.fromisoformat(rec["date"])
    machine = rec["machine"]
    assert MACHINE_KEYS <= set(machine)
    assert machine["cpu_model"] and isinstance(machine["cores"], int)
    assert set(machine["vector_extensions"]) <= VECTOR_FLAGS
    assert len(machine["load_avg_start"]) == 3 and len(machine["load_avg_end"]) == 3
    results = rec["results"]
    missing = EXPECTED.get(stem, set()) - set(results)
    assert results and not missing, f"{stem}: no {sorted(missing)} in {sorted(results)}"
    for key in RATIOS & set(results):
        assert isinstance(results[key], (int, float)) and math.isfinite(results[key]) and results[key] > 0, key
    assert not any(k.startswith("error[") for k in results), results


def results_listing() -> list[Path]:
    return sorted((BENCH / "results").iterdir()) if (BENCH / "results").exists() else []


# Scripts whose smoke runs in this process (`main(argv)`, on the session's Ray where they use one):
# the interpreter, imports and a Ray start are paid once per session.  The others stay real
# subprocesses, which also checks the entry point `python benchmarks/<script>.py` itself.
IN_PROCESS = {"embed_speed", "openai_throughput", "epoch_speed", "study_tables"}


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.stem not in SMOKED_ELSEWHERE], ids=lambda p: p.stem)
def test_smoke(script: Path, tmp_path: Path, request, monkeypatch):
    before = results_listing()
    out = tmp_path / "result.json"
    argv = ["--smoke", "--out", str(out)]
    if script.stem in IN_PROCESS:
        import importlib

        import torch

        request.getfixturevalue("local_ray")
        monkeypatch.syspath_prepend(str(BENCH))
        monkeypatch.chdir(tmp_path)
        for k, v in _env().items():
            if k != "PYTHONPATH":
                monkeypatch.setenv(k, v)
        threads = torch.get_num_threads()
        try:
            code = importlib.import_module(script.stem).main(argv)
        finally:
            torch.set_num_threads(threads)  # a smoke run sets its own; later tests keep theirs
        assert code in (None, 0), f"{script.name} --smoke returned {code}"
    else:
        proc = subprocess.run([sys.executable, str(script), *argv], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (f"{script.name} --smoke exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                      f"{proc.stderr[-3000:]}")
    check_record(json.loads(out.read_text()), script.stem)
    assert results_listing() == before, "a smoke run wrote into benchmarks/results"


def test_study_tables_attribution_design_smoke(tmp_path: Path, monkeypatch):
    """benchmarks/study_tables.py --design attribution on its synthetic store: every contrast of
    experiments/attribution.yaml is computed, and the repeats of the variants that read no unit
    neighbours are found and equal (the CPU attribution study's table comes from this code)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import study_tables

    out = tmp_path / "result.json"
    assert study_tables.main(["--smoke", "--design", "attribution", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    check_record(rec, "study_tables")
    res = rec["results"]
    assert res["design"] == "attribution"
    assert set(res["arms"]) == set(study_tables.ATTRIBUTION_ARMS) and all(a["n"] == 3 for a in res["arms"].values())
    assert set(res["comparisons"]) == {f"{t} vs {b}" for t, b in study_tables.ATTRIBUTION_COMPARISONS}
    det = res["determinism_no_cl"]
    assert len(det["identical"]) == 12 and all(det["identical"])  # no_cl, self_view x 2 exclusions x 3 seeds
    # the synthetic store gives full a known gain over no_cl: the table sees it
    assert res["comparisons"]["full vs no_cl"]["test/ndcg@20"]["mean_diff"] > 0
