"""The CLI entry point: every sub-command is registered where COMMAND_MODULES says, imported lazily."""
from __future__ import annotations

import subprocess
import sys

from sracl_ray import cli


def test_command_modules_match_what_the_modules_register():
    parser = cli.build_parser()  # no argv: every module registers
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"train", *cli.COMMAND_MODULES}
    for command, module in cli.COMMAND_MODULES.items():
        only = cli.build_parser([command, "--help"])
        names = set(next(a for a in only._actions if a.dest == "command").choices)
        assert command in names, (command, module)


def test_building_one_command_does_not_import_the_heavy_stack():
    """Only the named command's module is imported: no Ray or torch before the command runs (a fresh
    interpreter, since this test process has imported everything already)."""
    code = ("import sys; from sracl_ray.cli import build_parser; build_parser(['train', '--help']); "
            "build_parser(['results']); print(sorted(m for m in ('ray', 'torch', 'duckdb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]
