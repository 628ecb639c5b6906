"""The HTML report and the CLI."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from analysis import cli
from analysis.report import focus_metrics, write_report


def _imgs(html: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", html)


def test_report_references_existing_pngs(store, tmp_path: Path):
    root, _ = store
    out = tmp_path / "report"
    md = write_report(root, out)
    html = (out / "index.html").read_text()
    imgs = _imgs(html)
    assert imgs == ["fig4_model_agnostic.png", "fig5_alpha_beta.png", "fig6_k.png",
                    "fig7_sparsity.png"]
    for name in imgs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Table 2" in md and "Table 3" in md and "Significance" in md
    assert "<table>" in html and "metric vs alpha (" in html  # beta never varied
    assert (out / "tables.md").read_text() == md and r"\textbf{" in (out / "tables.tex").read_text()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_report_skips_figures_without_variation(tmp_path: Path, store_builder):
    root = tmp_path / "sweep"
    store_builder(root, sweeps=False, ablations=False)
    for p in (root / "runs").rglob("ranks.parquet"):
        p.unlink()
    out = tmp_path / "report"
    out.mkdir()
    (out / "fig6_k.png").write_bytes(b"stale figure from an earlier report")
    (out / "notes.png").write_bytes(b"not ours")
    md = write_report(root, out)
    html = (out / "index.html").read_text()
    assert _imgs(html) == ["fig4_model_agnostic.png"]
    assert "Table 2" in md and "Table 3" not in md
    assert "Fig. 5: no backbone has two or more values of alpha/beta" in html
    assert "Fig. 7: ranks file missing" in html
    assert not (out / "fig5_alpha_beta.png").exists()
    assert not (out / "fig6_k.png").exists()  # a figure that no longer applies is removed
    assert (out / "notes.png").exists()  # files the report does not own are left alone


def test_focus_metrics():
    assert focus_metrics(["test/hr@10", "test/hr@20", "test/ndcg@10", "test/ndcg@20"]) == [
        "test/hr@20", "test/ndcg@20"]
    assert focus_metrics(["valid/hr@10"]) == ["valid/hr@10"]


def test_cli_main_prints_tables(store, tmp_path: Path, capsys):
    root, _ = store
    out = tmp_path / "r"
    rc = cli.main(["report", str(root / "results"), "--out", str(out), "--metric", "test/hr@20",
                   "--metric", "test/ndcg@20", "--reference", "alpha=0.2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Table 2" in printed and "HR@20" in printed and "HR@10" not in printed
    assert (out / "index.html").is_file()
    assert "alpha=0.2, beta=0.1, k=10" in (out / "index.html").read_text()


def test_register_adds_report_to_an_existing_parser(tmp_path: Path):
    parser = argparse.ArgumentParser(prog="sracl-ray")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(["report", "d", "--out", "o", "--edges", "5,10,20"])
    assert args.func is cli.run_report and args.dir == "d" and args.metric is None
    assert cli.parse_reference(["alpha=0.1", "k=10", "mask_history=true"]) == {
        "alpha": 0.1, "k": 10, "mask_history": True}
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_reference(["alpha"])


def test_cli_missing_store_fails_with_the_path(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope"):
        cli.main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
