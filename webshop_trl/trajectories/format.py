"""The trajectory format: JSON lines, one episode per line.

Each line is an object::

    {"format": "webshop-trl/trajectory/v1",
     "goal": {...Goal.to_dict()...},          # goal index, instruction, attributes, options, ...
     "steps": [{"observation": str,            # what the agent saw before acting
                "available_actions": [str],    # the valid actions on that page
                "action": str,                 # what it did
                "reward": float}, ...],        # reward of that step (non-zero only on purchase)
     "final_reward": float,                    # 0 if the episode never bought
     "source": str,                            # e.g. "human-play", "rule", "expert", "il-rollout"
     "metadata": {...}}                        # free-form: observation mode, seeds, timing, ...

Lines are appended with one write and a flush, so an interrupted session loses at most the
episode in progress; a reader names the file and line of any malformed record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from webshop_trl.errors import DataFileError

FORMAT_ID = "webshop-trl/trajectory/v1"


@dataclass
class Step:
    observation: str
    available_actions: list[str]
    action: str
    reward: float = 0.0


@dataclass
class Trajectory:
    goal: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    final_reward: float = 0.0
    source: str = "unknown"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_ID, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Trajectory":
        if data.get("format", FORMAT_ID) != FORMAT_ID:
            raise ValueError(f"unsupported trajectory format {data.get('format')!r} (expected {FORMAT_ID})")
        if not isinstance(data.get("goal"), dict) or not isinstance(data.get("steps"), list):
            raise ValueError("a trajectory needs a 'goal' object and a 'steps' list")
        steps = [Step(**s) for s in data["steps"]]
        return cls(
            goal=data["goal"],
            steps=steps,
            final_reward=float(data.get("final_reward", 0.0)),
            source=str(data.get("source", "unknown")),
            metadata=dict(data.get("metadata") or {}),
        )


def append_trajectory(path: str | Path, trajectory: Trajectory) -> None:
    """Append one episode as one line, flushed and fsynced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(trajectory.to_json(), ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write a whole file atomically (temp file + rename); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for t in trajectories:
            fh.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return n


def read_trajectories(path: str | Path, lenient: bool = False, skipped: list[str] | None = None) -> Iterator[Trajectory]:
    """Yield the trajectories of a file. A malformed line raises `DataFileError` naming the file
    and line; with ``lenient=True`` it is skipped and its description appended to ``skipped``."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"trajectory file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Trajectory.from_json(json.loads(line))
            except (ValueError, TypeError, KeyError) as exc:
                message = f"{path}:{lineno}: malformed trajectory: {exc}"
                if not lenient:
                    raise DataFileError(message) from exc
                if skipped is not None:
                    skipped.append(message)
