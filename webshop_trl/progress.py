"""Durations and progress as plain text, for terminals and logs alike (stdlib only, cheap to import).

A rich progress bar renders nothing useful into a log file; `ProgressLines` is what the long
commands print instead when the pipeline runs them (its live view shows each stage's last log line).
"""

from __future__ import annotations

import sys
import time


def fmt_seconds(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLines:
    """Progress as plain lines on stderr: one at most every ``every`` seconds, and one when ``done``
    reaches ``total``, so a long stage (self-generation, Thompson sampling) does not look stalled."""

    def __init__(self, label: str, total: int, every: float = 15.0):
        self.label, self.total, self.every = label, total, every
        self.start = time.monotonic()
        self._last: float | None = None

    def update(self, done: int, **fields: object) -> None:
        now = time.monotonic()
        if done < self.total and self._last is not None and now - self._last < self.every:
            return
        self._last = now
        extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in fields.items())
        print(f"{self.label}: {done}/{self.total}{extra}, {fmt_seconds(now - self.start)} elapsed", file=sys.stderr, flush=True)
