"""Build an index folder atomically and reuse it while it still matches what it was built from.

An index lives in ``<root>/<engine>-<catalog fingerprint>/``. It is built in a sibling temporary
folder and renamed into place only once complete, with a ``manifest.json`` written last inside it.
So a build that is killed half-way leaves only a ``.building-*`` folder, which is never mistaken for
an index and is swept away by a later build. Two processes building at once both finish; the first
rename wins and the other discards its copy.

The folder name carries only the catalog fingerprint (the ASIN list). The manifest records a hash
of the document texts and the engine's build settings; when they differ from what is wanted, the
index is rebuilt and replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from webshop_trl.paths import pid_alive

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_BUILDING = ".building-"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete index, or None (missing folder, half index, unreadable manifest)."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(folder: Path, expected: dict[str, Any]) -> bool:
    """True when ``folder`` is a complete index whose manifest has every key/value in ``expected``."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("manifest_version") != MANIFEST_VERSION:
        return False
    return all(manifest.get(key) == value for key, value in expected.items())


def sweep_stale_builds(root: Path, name: str, max_age_s: float = 24 * 3600) -> None:
    """Remove temporary build folders of ``name`` left by processes that are gone (or very old)."""
    if not root.is_dir():
        return
    for tmp in root.glob(f"{_BUILDING}{name}-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            pid = -1
        too_old = time.time() - tmp.stat().st_mtime > max_age_s
        if pid <= 0 or not pid_alive(pid) or too_old:
            shutil.rmtree(tmp, ignore_errors=True)


def build_atomically(
    folder: Path,
    expected: dict[str, Any],
    build: Callable[[Path], dict[str, Any] | None],
    force: bool = False,
) -> tuple[Path, bool]:
    """Make sure ``folder`` holds a current index; return (folder, whether it was built now).

    ``build(tmp)`` writes the index into the empty folder ``tmp`` and may return extra manifest
    fields (sizes, timings). ``expected`` is written to the manifest and compared on later calls.
    """
    if not force and is_current(folder, expected):
        return folder, False
    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_builds(root, folder.name)
    tmp = root / f"{_BUILDING}{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        started = time.perf_counter()
        extra = build(tmp) or {}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            **expected,
            **extra,
            "build_seconds": round(time.perf_counter() - started, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        # the manifest is the "complete" mark: written last, via its own temp file
        (tmp / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp / (MANIFEST + ".tmp"), tmp / MANIFEST)
        _install(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, True


def _install(tmp: Path, folder: Path) -> None:
    """Move a finished build into place, replacing a stale index (never a current one being raced)."""
    if folder.exists():
        old = folder.with_name(f"{_BUILDING}{folder.name}-0-old{uuid.uuid4().hex[:8]}")
        try:
            os.rename(folder, old)
        except FileNotFoundError:
            pass  # another process moved it meanwhile
        else:
            shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:
        # another process installed its (equally fresh) build first; keep that one
        if read_manifest(folder) is None:
            raise
