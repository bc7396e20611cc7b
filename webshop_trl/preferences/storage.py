"""Saving a built dataset atomically: a build interrupted at any point leaves nothing at the
output path that loads as an incomplete dataset.

The dataset, its card (README.md) and ``build_info.json`` are written into a sibling folder
``<output>.tmp-<random>``, flushed to disk, and only then renamed to ``<output>`` (a rename is
atomic on one file system). A killed build can leave a ``.tmp-`` folder behind, never a partial
``<output>``; `stale_temp_folders` finds them. With ``overwrite``, an existing output is first
renamed aside and deleted only after the new one is in place (and put back if the rename fails);
only folders that hold a dataset built here (their ``build_info.json`` says so) or empty ones are
ever overwritten.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

from webshop_trl.errors import DataFileError
from webshop_trl.preferences.build import BUILD_INFO_NAME, CARD_NAME, FORMAT_ID, BuiltPreferences
from webshop_trl.preferences.card import render_card


def is_preference_folder(path: str | os.PathLike) -> bool:
    """True for a folder saved by `save_preferences` (its build_info.json has our format id)."""
    try:
        return json.loads((Path(path) / BUILD_INFO_NAME).read_text(encoding="utf-8")).get("format") == FORMAT_ID
    except (OSError, ValueError, AttributeError):
        return False


def check_output(output: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before a long build) if ``output`` cannot be written; returns it absolute."""
    out = Path(output).absolute()
    if out.exists():
        if not out.is_dir():
            raise DataFileError(f"output {out} exists and is not a folder")
        if not overwrite:
            raise DataFileError(f"output {out} already exists (pass --overwrite to replace it)")
        if any(out.iterdir()) and not is_preference_folder(out):
            raise DataFileError(f"output {out} exists and is not a preference dataset built by webshop-trl; "
                                "not overwriting it (remove it yourself or choose another --output)")
    return out


def stale_temp_folders(output: str | os.PathLike) -> list[Path]:
    """Temporary folders that interrupted builds of ``output`` left behind (safe to delete when no
    build is running)."""
    out = Path(output).absolute()
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.glob(f"{out.name}.tmp-*") if p.is_dir())


def _new_folder(out: Path, kind: str) -> Path:
    """A new sibling folder ``<out>.<kind>-<random>`` (mode from the umask, unlike mkdtemp's 0700)."""
    while True:
        path = out.with_name(f"{out.name}.{kind}-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_preferences(
    built: BuiltPreferences,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    card: str | None = None,
    before_rename: Callable[[Path], Any] | None = None,
) -> Path:
    """Write ``built`` to ``output``: ``DatasetDict.save_to_disk`` plus README.md (the card,
    `render_card` by default) and build_info.json, atomically (see the module docstring).

    ``before_rename(temp_folder)`` is called once everything is written, just before the rename
    (tests use it to interrupt a build at its last moment). Returns the output path.
    """
    out = check_output(output, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder(out, "tmp")
    aside: Path | None = None
    try:
        # an empty split (e.g. no goal left for eval from one trajectory) needs an explicit shard:
        # datasets otherwise writes none and load_from_disk then fails with an IndexError
        empty = {name: 1 for name, split in built.dataset.items() if len(split) == 0}
        built.dataset.save_to_disk(str(tmp), num_shards=empty or None)
        (tmp / CARD_NAME).write_text(card if card is not None else render_card(built.info), encoding="utf-8")
        (tmp / BUILD_INFO_NAME).write_text(json.dumps(built.info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        if before_rename is not None:
            before_rename(tmp)
        if out.exists():
            aside = _new_folder(out, "old")
            os.rename(out, aside / "previous")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and (aside / "previous").exists() and not out.exists():
            os.rename(aside / "previous", out)  # put the previous dataset back
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return out


def load_preferences(path: str | os.PathLike) -> tuple[Any, dict[str, Any], str]:
    """A saved folder's DatasetDict, build info and card text."""
    from datasets import DatasetDict

    path = Path(path)
    if not is_preference_folder(path):
        raise DataFileError(f"{path} is not a preference dataset saved by webshop-trl (no valid {BUILD_INFO_NAME})")
    info = json.loads((path / BUILD_INFO_NAME).read_text(encoding="utf-8"))
    card = (path / CARD_NAME).read_text(encoding="utf-8") if (path / CARD_NAME).is_file() else render_card(info)
    return DatasetDict.load_from_disk(str(path)), info, card
