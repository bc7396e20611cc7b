"""Reading JSON-lines files record by record, with one policy for bad lines.

Every reader of this package (our trajectory format, WebShop's IL file, the MTurk session logs)
must name the file and line of a malformed record, or, when asked to be lenient, skip it and
say so. Keeping that policy here means the three readers cannot drift apart, and a file cut off
by a killed writer is reported as such rather than as a puzzling JSON error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from webshop_trl.errors import DataFileError


@dataclass
class LineErrors:
    """What to do with a bad record: raise `DataFileError` (strict) or record it and go on.

    ``skipped`` (if given) receives one ``"<file>:<line>: <problem>"`` message per record left
    out, so a caller can count and show them.
    """

    path: Path
    lenient: bool = False
    skipped: list[str] | None = None

    def handle(self, lineno: int | str, problem: str) -> None:
        message = f"{self.path}:{lineno}: {problem}"
        if not self.lenient:
            raise DataFileError(message)
        if self.skipped is not None:
            self.skipped.append(message)


def read_json_lines(path: str | Path, errors: LineErrors, what: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of ``path``.

    A line that is not JSON goes to ``errors`` (``what`` names the kind of record in the
    message). A last line with no newline that fails to parse is reported as truncated: that is
    what an interrupted writer leaves behind, and saying so saves the user a hunt.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{what} file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        lineno = 0
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):
                    errors.handle(
                        lineno,
                        f"truncated last line: the file ends inside a {what} record with no newline "
                        f"(was the writer interrupted?): {exc}",
                    )
                else:
                    errors.handle(lineno, f"malformed {what}: not valid JSON: {exc}")
                continue
            yield lineno, value
