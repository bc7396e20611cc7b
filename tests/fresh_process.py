"""Running a snippet in a fresh interpreter with a chosen PYTHONHASHSEED (reproducibility tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *args: str, hash_seed: str) -> str:
    """The stripped stdout of ``python -c code *args`` run from the repo root in a bare
    environment with PYTHONHASHSEED=hash_seed; asserts that it exited 0."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
