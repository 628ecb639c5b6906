"""Figures 4-6: the files are written and the plotted values are the store's means and stds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from analysis.figures import hparam_values, plot_hparam, plot_model_agnostic

PNG = b"\x89PNG\r\n\x1a\n"


def _ax(fig, title, ylabel, xlabel=None):
    return next(a for a in fig.axes if a.get_title() == title and a.get_ylabel() == ylabel
                and (xlabel is None or a.get_xlabel() == xlabel))


def _stats(rows, metric, **where):
    r = rows
    for col, v in where.items():
        r = r[np.isclose(r[col], v)] if isinstance(v, float) else r[r[col] == v]
    assert len(r) == 3, where
    return r[metric].mean(), np.std(r[metric], ddof=1)


def _err_halves(container):
    """Half-lengths of the vertical error bars of a container."""
    segs = container.lines[2][0].get_segments()
    return np.array([(s[1][1] - s[0][1]) / 2 for s in segs]), np.array(
        [(s[1][1] + s[0][1]) / 2 for s in segs])


def test_fig4_bars_are_means_with_std_error_bars(loaded, store, tmp_path: Path):
    _, rows = store
    main = rows[(rows.alpha.isin([0.0, 0.1])) & (rows.k == 10)]
    fig = plot_model_agnostic(loaded, tmp_path / "fig4.png")
    assert (tmp_path / "fig4.png").read_bytes()[:8] == PNG
    for dataset in ("beauty", "office"):
        for metric, label in (("test/hr@20", "HR@20"), ("test/ndcg@20", "NDCG@20")):
            ax = _ax(fig, dataset, label)
            assert [t.get_text() for t in ax.get_xticklabels()] == ["GRU4Rec", "SASRec"]
            bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
            for series, variant in (("original", "no_cl"), ("+SRA-CL", "full")):
                exp = [_stats(main, metric, dataset=dataset, backbone=b, variant=variant)
                       for b in ("gru4rec", "sasrec")]
                c = bars[series]
                assert [p.get_height() for p in c.patches] == pytest.approx([m for m, _ in exp])
                half, centre = _err_halves(c.errorbar)
                assert half == pytest.approx([s for _, s in exp])
                assert centre == pytest.approx([m for m, _ in exp])


def test_fig5_alpha_lines_read_back(loaded, store, tmp_path: Path):
    _, rows = store
    assert hparam_values(loaded, "alpha") == [0.05, 0.1, 0.2]
    assert hparam_values(loaded, "beta") == []  # beta never varied: nothing to draw
    full = rows[(rows.variant == "full") & (rows.k == 10)]
    fig = plot_hparam(loaded, tmp_path / "fig5.png", ("alpha",))
    assert (tmp_path / "fig5.png").read_bytes()[:8] == PNG
    ax = _ax(fig, "office", "NDCG@20", "alpha")
    lines = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in lines] == ["SASRec+SRA-CL"]  # gru4rec has one alpha only
    exp = [_stats(full, "test/ndcg@20", dataset="office", backbone="sasrec", alpha=a)
           for a in (0.05, 0.1, 0.2)]
    assert lines[0].lines[0].get_ydata() == pytest.approx([m for m, _ in exp])
    assert list(lines[0].lines[0].get_xdata()) == [0, 1, 2]
    assert _err_halves(lines[0])[0] == pytest.approx([s for _, s in exp])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.1", "0.2"]


def test_fig5_alpha_beta_grid(loaded, tmp_path: Path):
    fig = plot_hparam(loaded, tmp_path / "fig5ab.png", ("alpha", "beta"))
    assert (tmp_path / "fig5ab.png").is_file()
    assert {a.get_xlabel() for a in fig.axes} == {"alpha", "beta"}
    beta_axes = [a for a in fig.axes if a.get_xlabel() == "beta"]
    assert all(not a.containers for a in beta_axes)


def test_fig6_k_lines_read_back(loaded, store, tmp_path: Path):
    _, rows = store
    full = rows[(rows.variant == "full") & (rows.alpha == 0.1)]
    fig = plot_hparam(loaded, tmp_path / "fig6.png", ("k",))
    assert (tmp_path / "fig6.png").read_bytes()[:8] == PNG
    ax = _ax(fig, "beauty", "HR@20", "k")
    (line,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    exp = [_stats(full, "test/hr@20", dataset="beauty", backbone="sasrec", k=k) for k in (5, 10, 20)]
    assert line.lines[0].get_ydata() == pytest.approx([m for m, _ in exp])
    assert _err_halves(line)[0] == pytest.approx([s for _, s in exp])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20"]


def test_no_variation_is_an_error_and_no_file(loaded, tmp_path: Path):
    with pytest.raises(ValueError, match="two or more values"):
        plot_hparam(loaded, tmp_path / "x.png", ("beta",))
    assert not (tmp_path / "x.png").exists()
