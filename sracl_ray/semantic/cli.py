"""Sub-commands of the semantic pipeline: prepare, summarize, embed, neighbours, semantic, llm serve.

`register(subparsers)` adds them to the `sracl-ray` parser; each sets `func(args) -> exit code`.
Settings: `--config FILE` (the experiment YAML, which may also hold the `prompts`, `summary`,
`embed` and `neighbours` sections of sracl_ray/semantic/settings.py) and `--set section.key=value`.
Examples:
    sracl-ray llm serve --port 8000 &                       # llama.cpp + the packaged SmolLM2
    sracl-ray semantic --set data.max_users=200 --out runs/sem200
    sracl-ray semantic --set summary.backend=raw --set semantic.granularity=user
Exit codes: 0 done, 2 bad settings or inputs, 3 summaries still missing or failed (rerun).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sracl_ray.config import ConfigError


def _settings(args):
    from sracl_ray.config import load_all

    return load_all(args.config, args.set)


def _out(args, cfg) -> Path:
    """The pipeline directory; checked before any stage reads data or writes a file."""
    from sracl_ray.semantic.pipeline import default_out

    out = Path(args.out) if args.out else default_out(cfg)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(f"--out {out}: {blocker} is a file, expected a directory")
    return out


def _report(results) -> None:
    for r in results:
        state = "up to date, skipped" if r.skipped else (r.detail or "done")
        print(f"{r.stage:<11} {r.path}  [{state}]")


def _run(args, body) -> int:
    """Errors propagate to sracl_ray.cli.main: one line, exit 2 (bad input) or 3 (summaries missing)."""
    cfg, pipe = _settings(args)
    results = body(cfg, pipe, _out(args, cfg), not args.no_progress)
    _report(results)
    return 0


def cmd_prepare(args) -> int:
    from sracl_ray.semantic.pipeline import prepare, stage_dirs

    return _run(args, lambda cfg, pipe, out, prog: [prepare(cfg, stage_dirs(out)["prepared"])])


def cmd_summarize(args) -> int:
    from sracl_ray.semantic.pipeline import stage_dirs, summarize
    from sracl_ray.semantic.summaries import SummariesIncomplete

    def body(cfg, pipe, out, prog):
        d = stage_dirs(out)
        res, report = summarize(d["prepared"], d["summaries"], cfg.semantic.granularity, pipe, prog, args.limit)
        _report([res])
        if report is not None and not report.complete:
            raise SummariesIncomplete(f"{report.total - report.done} of {report.total} prompts still lack a summary "
                                      f"({report.failed} failed, errors stored); run summarize again")
        return []

    return _run(args, body)


def cmd_embed(args) -> int:
    from sracl_ray.semantic.pipeline import embed, stage_dirs

    return _run(args, lambda cfg, pipe, out, prog: [embed(stage_dirs(out)["summaries"], stage_dirs(out)["embeddings"],
                                                          pipe, prog)])


def cmd_neighbours(args) -> int:
    from sracl_ray.semantic.pipeline import neighbours, stage_dirs

    if args.stats:
        return show_composition(args.stats)

    def body(cfg, pipe, out, prog):
        d = stage_dirs(out)
        return [neighbours(d["prepared"], d["embeddings"], d["artifact"], cfg.semantic.granularity, pipe, prog)]

    return _run(args, body)


def show_composition(path: str) -> int:
    """`neighbours --stats DIR`: the artifact's neighbour composition, always computed from its
    arrays; a manifest record that disagrees with them is named in a warning, never printed."""
    from sracl_ray.semantic.artifact import load_artifact
    from sracl_ray.semantic.composition import compare_composition, composition_of, format_composition

    art = load_artifact(path)
    comp = composition_of(art.unit_nbrs, art.units)
    stored = art.manifest.get("composition")
    if stored is None:
        how = "computed from its arrays; its manifest has no record"
    elif problem := compare_composition(stored, comp):
        how = "computed from its arrays; its manifest's record disagrees and is ignored"
        print(f"sracl-ray: warning: {Path(path) / 'manifest.json'}: {problem}; the arrays were changed after "
              "the artifact was built, or the manifest was", file=sys.stderr)
    else:
        how = "computed from its arrays, matching its manifest"
    print(format_composition(comp, f"neighbour composition of {path} ({art.granularity} units, {how})"))
    return 0


def cmd_semantic(args) -> int:
    from sracl_ray.semantic.pipeline import run_all

    def body(cfg, pipe, out, prog):
        results = run_all(cfg, pipe, out, prog)
        print(f"artifact: {results[-1].path}  (train with --set semantic.artifact={results[-1].path})")
        return results

    return _run(args, body)


def cmd_llm_serve(args) -> int:
    """Start the server, wait until it exits or a signal arrives; the server never outlives this."""
    from sracl_ray.semantic.server import StopRequested, check_options, find_smollm2_gguf, start_server, stop_signals

    check_options(args.engine, args.port, args.host, args.n_ctx, args.timeout, args.alias, args.n_threads,
                  args.python)
    if args.engine == "vllm" and not args.model:
        raise ConfigError("llm serve: --engine vllm needs --model PATH (an HF-format model directory)")
    model = args.model or find_smollm2_gguf()
    server = None
    # SIGTERM/SIGINT/SIGHUP raise StopRequested (also during the start-up wait, which then stops
    # the server itself); the finally below and an atexit hook in server.py stop it otherwise.
    with stop_signals():
        try:
            server = start_server(args.engine, model, port=args.port, host=args.host, n_ctx=args.n_ctx,
                                  timeout_s=args.timeout, alias=args.alias, n_threads=args.n_threads,
                                  python=args.python, log_path=args.log)
            print(f"{args.engine} serving {model} as '{server.model}' on {server.base_url} (log: {server.log_path}); "
                  f"Ctrl-C or SIGTERM stops it", flush=True)
            code = server.process.wait()
            print(f"sracl-ray: llm serve: the server exited by itself with code {code} (log: {server.log_path})",
                  file=sys.stderr, flush=True)
            return code if code > 0 else 1
        except StopRequested as e:
            print(f"llm serve: {e}, stopping the server", flush=True)
            return 0
        finally:
            if server is not None:
                server.stop()


def register(subparsers) -> None:
    """Add the semantic-pipeline sub-commands to an argparse sub-parser set."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="experiment YAML (may hold prompts/summary/embed/neighbours sections)")
    common.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a setting, e.g. summary.backend=raw (repeatable)")
    common.add_argument("--out", help="pipeline directory (default .sracl_cache/semantic/<dataset>)")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    stages = [("prepare", cmd_prepare, "dataset -> Parquet interactions/items + split arrays"),
              ("summarize", cmd_summarize, "LLM summaries of user units and items (resumable)"),
              ("embed", cmd_embed, "embed the summaries (refuses while any is missing or failed)"),
              ("neighbours", cmd_neighbours, "top-K cosine neighbours -> the semantic artifact"),
              ("semantic", cmd_semantic, "prepare + summarize + embed + neighbours")]
    for name, func, help_ in stages:
        p = subparsers.add_parser(name, parents=[common], help=help_, description=help_)
        if name == "summarize":
            p.add_argument("--limit", type=int, help="ask for at most N prompts in this run")
        if name == "neighbours":
            p.add_argument("--stats", metavar="ARTIFACT_DIR", help="print the neighbour composition of an artifact "
                           "(same-user and longer same-user shares per k) and exit")
        p.set_defaults(func=func)
    llm = subparsers.add_parser("llm", help="local LLM server")
    llm_sub = llm.add_subparsers(dest="llm_command", required=True)
    serve = llm_sub.add_parser("serve", help="start an OpenAI-compatible server on loopback and wait")
    serve.add_argument("--engine", choices=["llama.cpp", "vllm"], default="llama.cpp")
    serve.add_argument("--model", help="GGUF (llama.cpp; default: packaged SmolLM2-135M) or HF model dir (vllm)")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    serve.add_argument("--port", type=int, default=8000, help="TCP port, 1..65535 (must be free)")
    serve.add_argument("--n-ctx", type=int, default=2048, help="context length (>= 1)")
    serve.add_argument("--n-threads", type=int, help="llama.cpp threads (default: its own)")
    serve.add_argument("--alias", default="smollm2-135m-instruct", help="model name clients send")
    serve.add_argument("--python", default="", help="interpreter with the engine installed (e.g. a vllm venv)")
    serve.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server (> 0)")
    serve.add_argument("--log", help="server log file (default: a temp file)")
    serve.set_defaults(func=cmd_llm_serve)
