"""Errors raised by dataset readers."""
from sracl_ray.errors import UserError


class DataFormatError(UserError):
    """A data file is malformed; the message names the file, the line and what was expected."""

    def __init__(self, path, line: int | None, expected: str, got: str = ""):
        where = f"{path}, line {line}" if line is not None else f"{path}"
        detail = f" (got {got!r})" if got else ""
        super().__init__(f"{where}: expected {expected}{detail}")
        self.path, self.line, self.expected = str(path), line, expected
