"""Analysis of a finished sweep: tables, significance tests and figures from the results store.

Reads only ``<storage>/results/trial-*.parquet`` and the per-user ranks files those rows point to
(see docs/CONTRACTS.md); never imports a trainer.  Modules: ``store`` (load), ``methods`` (which
runs form a method, names, reference settings), ``aggregate`` (mean ± std over seeds), ``stats``
(paired t-tests over seeds), ``significance`` (per-user paired bootstrap and Wilcoxon tests from the
ranks files), ``tables`` (Tables 2 and 3, significance), ``sparsity`` (Fig. 7), ``figures`` (Figs. 4-6),
``curves`` (learning curves from the trials' histories), ``report`` (index.html), ``paper`` (one
report for a whole ``sracl-ray reproduce`` root) and ``cli`` (``sracl-ray report``).  Nothing heavy
is imported here.
"""
