"""The error types every module raises for a user's mistake, and how the CLI shows them.

A `UserError` means something the user gave (a setting, a data file, an artifact, a query, a
storage dir) is wrong.  The CLI prints it as ONE line `sracl-ray: error: ...` and exits 2; the
traceback appears only with `--debug` / `-v`.  Its message must name the culprit (file and line,
or the dotted config key) and what was expected.  `Incomplete` is work that a rerun finishes
(exit 3).  Anything else is a bug: one line, exit 1, and a hint to rerun with --debug.
"""
from __future__ import annotations

import re


class UserError(ValueError):
    """A setting, file, query or directory the user gave is wrong; the message names it."""


class Incomplete(RuntimeError):
    """Work that is not finished yet but that a rerun of the same command continues."""


class NonFiniteError(UserError):
    """A loss or score became NaN/inf: the run stops and writes no metrics."""


def one_line(text: str) -> str:
    """Fold a message onto one line (a multi-line message would read as several errors)."""
    return " ".join(str(text).split())


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that reached the CLI."""
    exc = cause_of(exc)  # Ray's RayTaskError(X) hides X's attributes (an OSError's path)
    if isinstance(exc, Incomplete):
        return 3, one_line(exc)
    if isinstance(exc, UserError):
        return 2, one_line(exc)
    if isinstance(exc, OSError) and (exc.filename or exc.strerror):
        name = f"{exc.filename}: " if exc.filename else ""
        return 2, one_line(f"{name}{exc.strerror or exc}")
    if isinstance(exc, MemoryError):
        return 2, "out of memory (the data or settings ask for more than this machine has)"
    return 1, one_line(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")


MAX_ERROR_CHARS = 300
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(\(\w+\))?: ")


def cause_of(exc: BaseException) -> BaseException:
    """The user's exception inside Ray's RayTaskError(X) wrapper, which hides X's attributes
    (an OSError's filename among them)."""
    for _ in range(8):
        inner = getattr(exc, "cause", None) if type(exc).__name__.startswith("RayTaskError") else None
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def error_line(exc: BaseException) -> str:
    """One line for an exception: an OSError keeps its path (`path: strerror`)."""
    cause = cause_of(exc)
    if isinstance(cause, OSError) and cause.filename:
        text = f"{cause.filename}: {cause.strerror or cause}"
    else:
        text = f"{type(cause).__name__}: {cause}"
        last = [ln for ln in str(cause).splitlines() if _EXC_LINE.match(ln.strip())]
        text = last[-1].strip() if last else text  # a traceback text: its final `XError: ...` line
    text = one_line(text)
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."
