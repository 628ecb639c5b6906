"""Lines of a data file (plain or gzipped), decoded one at a time.

Reading bytes and decoding each line ourselves (instead of a text-mode file) is what lets a bad
byte or a truncated gzip stream become a DataFormatError that names the file and the line,
rather than a UnicodeDecodeError / EOFError from deep inside the io stack.
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from sracl_ray.data.errors import DataFormatError

# An id is at most 18 ASCII digits: always below 2**63, so it fits the int64 ids use.
ID_DIGITS = 18


def is_id(text: str) -> bool:
    """True for a non-negative integer written in ASCII digits ('²' and '٣' are digits to str.isdigit)."""
    return text.isascii() and text.isdigit() and len(text) <= ID_DIGITS


def decoded_lines(path: Path) -> Iterator[str]:
    """Every line of the file, line ending kept, decoded as UTF-8 (a leading byte-order mark dropped)."""
    path = Path(path)
    gz = path.suffix == ".gz"
    n = 0
    with (gzip.open if gz else open)(path, "rb") as f:
        try:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(path, n, "UTF-8 text",
                                          f"byte 0x{raw[e.start]:02x} at column {e.start + 1}") from e
                yield line.removeprefix("\ufeff") if n == 1 else line
        except (OSError, EOFError, zlib.error) as e:  # not gzip, a truncated stream, a read error
            raise DataFormatError(path, n + 1, "a readable (complete) gzip stream" if gz else "a readable file",
                                  str(e)) from e
