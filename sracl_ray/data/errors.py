"""Errors raised by dataset readers."""
from sracl_ray.errors import UserError


class DataFormatError(UserError):
    """A data file is malformed; the message names the file, the line and what was expected.

    `DataFormatError(path, line, expected, got)` reads "PATH, line N: expected EXPECTED (got 'GOT')";
    pass `message=` instead of `expected` for a statement that is not "expected ...".
    """

    def __init__(self, path, line: int | None, expected: str = "", got: str = "", *, message: str = ""):
        where = f"{path}, line {line}" if line is not None else f"{path}"
        detail = f" (got {got!r})" if got else ""
        super().__init__(f"{where}: {message}" if message else f"{where}: expected {expected}{detail}")
        self.path, self.line, self.expected = str(path), line, expected or message
