"""Which checkpoint ``--resume_from_checkpoint`` continues from, and what counts as a complete one.

`transformers.Trainer` (5.23) writes ``checkpoint-<step>`` in place: weights, optimizer,
scheduler, RNG states, and ``trainer_state.json`` *last*; older checkpoints are rotated away only
after that. So a run killed while saving leaves a ``checkpoint-<step>`` without a readable
``trainer_state.json`` next to the previous, complete one. Trainer's own ``get_last_checkpoint``
would pick the broken folder; `last_checkpoint` here skips it. PPO's checkpoints (our own loop)
are written to a temporary folder and renamed, and carry a ``trainer_state.json`` too, so the
same test applies to them.

``resume_from_checkpoint`` values (`resolve_resume_from_checkpoint`):

* unset, ``false`` -- start afresh;
* ``true`` (or ``last``) -- the last complete ``checkpoint-<n>`` of ``output_dir``; an error
  naming the folder when there is none;
* a folder -- that checkpoint; an error when it is missing or incomplete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from webshop_trl.errors import WebShopTrlError

TRAINER_STATE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

_TRUE = {"true", "yes", "1", "last"}
_FALSE = {"", "false", "no", "0", "none", "null"}


class CheckpointNotFoundError(WebShopTrlError, FileNotFoundError):
    """``resume_from_checkpoint`` names no complete checkpoint (the message says where it looked)."""


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """``n`` of a ``checkpoint-<n>`` folder name, else None."""
    m = _CHECKPOINT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a readable ``trainer_state.json`` (the last file a save writes)."""
    state = Path(path) / TRAINER_STATE
    try:
        json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    return True


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-<n>`` folders of ``output_dir`` (complete or not), smallest n first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The complete ``checkpoint-<n>`` of ``output_dir`` with the largest n (None if there is none)."""
    complete = [p for p in checkpoints(output_dir) if is_complete_checkpoint(p)]
    return complete[-1] if complete else None


def resolve_resume_from_checkpoint(value, output_dir: str | os.PathLike) -> str | None:
    """The checkpoint folder to continue from (see the module docstring), or None to start afresh."""
    if value is None or value is False:
        return None
    if value is True or str(value).strip().lower() in _TRUE:
        found = last_checkpoint(output_dir)
        if found is None:
            partial = [p.name for p in checkpoints(output_dir)]
            detail = f" (only incomplete ones, without a readable {TRAINER_STATE}: {partial})" if partial else ""
            raise CheckpointNotFoundError(
                f"resume_from_checkpoint=true: no complete checkpoint-<step> folder in {output_dir}{detail}; "
                "train without --resume_from_checkpoint, or name a checkpoint folder"
            )
        return str(found)
    if str(value).strip().lower() in _FALSE:
        return None
    path = Path(value)
    if not path.is_dir():
        raise CheckpointNotFoundError(f"resume_from_checkpoint: {path} is not a folder")
    if not is_complete_checkpoint(path):
        raise CheckpointNotFoundError(
            f"resume_from_checkpoint: {path} is not a complete checkpoint (no readable {TRAINER_STATE}; a run killed "
            "while saving leaves such a folder: resume from the one before it)"
        )
    return str(path)


__all__ = ["CheckpointNotFoundError", "checkpoint_step", "checkpoints", "is_complete_checkpoint", "last_checkpoint", "resolve_resume_from_checkpoint"]
