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

from webshop_trl.trajectories.jsonl import LineErrors, read_json_lines

FORMAT_ID = "webshop-trl/trajectory/v1"


@dataclass
class Step:
    observation: str
    available_actions: list[str]
    action: str
    reward: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> "Step":
        """A step from its JSON object; wrong types are rejected here so that a bad record is
        reported at its line instead of failing later inside a trainer."""
        if not isinstance(data, dict):
            raise ValueError(f"a step must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"observation", "available_actions", "action", "reward"}
        if unknown:
            raise ValueError(f"unknown step keys {sorted(unknown)}")
        observation, actions, action = data.get("observation"), data.get("available_actions"), data.get("action")
        reward = data.get("reward", 0.0)
        if not isinstance(observation, str) or not isinstance(action, str):
            raise ValueError("a step needs string 'observation' and 'action'")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ValueError("a step's 'available_actions' must be a list of strings")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise ValueError(f"a step's 'reward' must be a number, got {reward!r}")
        return cls(observation, list(actions), action, float(reward))


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
        steps = [Step.from_json(s) for s in data["steps"]]
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
    and line (a cut-off last line, as a killed writer leaves, is called truncated); with
    ``lenient=True`` it is skipped and its description appended to ``skipped``."""
    errors = LineErrors(Path(path), lenient, skipped)
    for lineno, data in read_json_lines(path, errors, "trajectory"):
        try:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            trajectory = Trajectory.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            errors.handle(lineno, f"malformed trajectory: {exc}")
            continue
        yield trajectory
