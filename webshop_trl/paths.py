"""Where webshop-trl keeps its data, indexes and outputs.

The data folder is never committed: ``webshop-trl data fetch`` fills it. Resolution order:
``WEBSHOP_TRL_DATA_DIR``; else ``<repo>/data`` when running from a source checkout (the folder
holding setup.cfg); else ``~/.cache/webshop_trl``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = PACKAGE_DIR.parent


def repo_dir() -> Path | None:
    """The source checkout this package runs from, or None for an installed wheel."""
    return _REPO_DIR if (_REPO_DIR / "setup.cfg").is_file() else None


def data_dir() -> Path:
    env = os.environ.get("WEBSHOP_TRL_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    repo = repo_dir()
    if repo is not None:
        return repo / "data"
    return Path.home() / ".cache" / "webshop_trl"


def webshop_data_dir() -> Path:
    """The fetched WebShop files (items_*.json, human_goals.json, ...)."""
    return data_dir() / "webshop"


def index_dir() -> Path:
    """Cached search indexes, one sub-folder per engine and catalog fingerprint."""
    return data_dir() / "indexes"


def default_source() -> Path | None:
    """The ../shared/webshop_data folder beside the checkout, if present (the CI layout)."""
    env = os.environ.get("WEBSHOP_TRL_SOURCE")
    if env:
        return Path(env)
    repo = repo_dir()
    candidates = [Path.cwd().parent / "shared" / "webshop_data"]
    if repo is not None:
        candidates.insert(0, repo.parent / "shared" / "webshop_data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (fsync the directory); file systems that cannot do
    this are fine: the rename is still atomic there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` through a temporary file in the same folder (flushed and fsynced) and a
    rename, so a killed run leaves either the old file or the new one, never a truncated one."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: object, indent: int | None = 1, default=None) -> Path:
    """`write_text_atomic` of ``json.dumps(data, indent=indent, default=default)``."""
    import json

    return write_text_atomic(path, json.dumps(data, indent=indent, default=default))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (lock files name their owner's pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
