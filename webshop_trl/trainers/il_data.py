"""Data for IL: decision-step datasets from trajectories, the goal hold-out, and the collator.

A decision-step row holds ``observation`` (the page text), ``candidates`` (its click actions),
``label`` (index of the demonstrated click), and bookkeeping columns (``goal_index``, ``step``,
``source``, ``reward``, ``group`` and ``length``). Candidate lists vary in length from page to
page; the collator leaves that to `ActionScoringProcessor`, which pads to the longest page and
masks the rest.
"""

from __future__ import annotations

import glob
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from webshop_trl.datasets.decision_steps import MAX_CANDIDATES, decision_steps
from webshop_trl.errors import DataFileError
from webshop_trl.policy.processing_action_scorer import IGNORE_INDEX, ActionScoringProcessor
from webshop_trl.trajectories.format import read_trajectories

# Columns the collator reads; everything else is bookkeeping that Trainer may drop.
MODEL_COLUMNS = ("observation", "candidates", "available_actions", "action", "label", "labels", "instruction")
REQUIRED_COLUMNS = ("observation", "candidates", "label")


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files/folders named by ``paths`` (glob patterns expanded, order kept, duplicates dropped)."""
    out: list[Path] = []
    for p in paths:
        p = os.fspath(p)
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise DataFileError(f"no file matches {p!r}")
        for m in matches:
            path = Path(m)
            if not path.exists():
                raise DataFileError(f"IL data {m!r} does not exist (make demos with `webshop-trl demos expert --output FILE`)")
            if path not in out:
                out.append(path)
    return out


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))


def trajectory_rows(
    path: Path,
    seed: int = 0,
    max_candidates: int | None = MAX_CANDIDATES,
    min_reward: float | None = None,
) -> list[dict[str, Any]]:
    """The decision steps of one trajectory file as rows (search steps skipped)."""
    trajectories = read_trajectories(path)
    if min_reward is not None:
        trajectories = (t for t in trajectories if t.final_reward >= min_reward)
    current = [-1]  # index of the trajectory decision_steps is reading

    def numbered():
        for trajectory in trajectories:
            current[0] += 1
            yield trajectory

    rows: list[dict[str, Any]] = []
    for step in decision_steps(numbered(), seed=seed, max_candidates=max_candidates):
        goal = step.goal_index
        rows.append(
            {
                "observation": step.observation,
                "candidates": list(step.candidates),
                "label": int(step.label),
                "goal_index": int(goal),
                "step": int(step.step),
                "source": step.source,
                "reward": float(step.reward),
                # goals group the hold-out; a trajectory without a goal index is its own group
                "group": f"goal:{goal}" if goal >= 0 else f"{path.name}:{current[0]}",
                "length": _length(step.observation, step.candidates),
            }
        )
    return rows


def _length(observation: str, candidates: Sequence[str]) -> int:
    return len(observation) + sum(len(c) for c in candidates)


def _saved_dataset_rows(path: Path, split: str | None = None):
    """A `save_to_disk` folder as a `datasets.Dataset` with the IL columns (plus bookkeeping)."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        key = split if split in loaded else ("train" if "train" in loaded else next(iter(loaded)))
        loaded = loaded[key]
    if "candidates" not in loaded.column_names and "available_actions" in loaded.column_names:
        loaded = loaded.rename_column("available_actions", "candidates")
    missing = [c for c in REQUIRED_COLUMNS if c not in loaded.column_names]
    if missing:
        raise DataFileError(f"saved dataset {path} lacks the IL columns {missing} (has {loaded.column_names})")
    if "group" not in loaded.column_names:
        goal = loaded["goal_index"] if "goal_index" in loaded.column_names else [-1] * len(loaded)
        loaded = loaded.add_column("group", [f"goal:{g}" if g >= 0 else f"{path.name}:{i}" for i, g in enumerate(goal)])
    if "length" not in loaded.column_names:
        loaded = loaded.add_column("length", [_length(o, c) for o, c in zip(loaded["observation"], loaded["candidates"])])
    return loaded


def load_decision_steps(
    paths: Sequence[str | os.PathLike],
    seed: int = 0,
    max_candidates: int | None = MAX_CANDIDATES,
    min_reward: float | None = None,
):
    """One `datasets.Dataset` of decision steps from trajectory files and/or saved datasets."""
    import datasets

    parts = []
    for path in expand_paths(paths):
        if _is_saved_dataset(path):
            parts.append(_saved_dataset_rows(path))
        elif path.is_dir():
            raise DataFileError(f"{path} is a folder but not a saved dataset (no dataset_info.json / dataset_dict.json)")
        else:
            rows = trajectory_rows(path, seed=seed, max_candidates=max_candidates, min_reward=min_reward)
            if rows:
                parts.append(datasets.Dataset.from_list(rows))
    if not parts:
        raise DataFileError(f"no decision steps (click choices) in {', '.join(map(os.fspath, paths))}")
    common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
    parts = [p.select_columns(common) for p in parts]
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return dataset


def split_by_group(dataset, eval_fraction: float, seed: int = 0):
    """(train, eval) with ``eval_fraction`` of the groups (goals) held out; eval is None at 0."""
    if eval_fraction <= 0:
        return dataset, None
    groups = sorted(set(dataset["group"]))
    if len(groups) < 2:
        raise DataFileError(f"cannot hold out {eval_fraction:.0%} of the goals: the data has {len(groups)} goal(s)")
    random.Random(seed).shuffle(groups)
    n_eval = min(len(groups) - 1, max(1, round(eval_fraction * len(groups))))
    held = set(groups[:n_eval])
    is_eval = [g in held for g in dataset["group"]]
    train_idx = [i for i, e in enumerate(is_eval) if not e]
    eval_idx = [i for i, e in enumerate(is_eval) if e]
    return dataset.select(train_idx), dataset.select(eval_idx)


def subsample(dataset, n: int | None, seed: int = 0):
    """At most ``n`` rows drawn at random (all of them when n is None or larger)."""
    if dataset is None or n is None or n >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(n))


def build_il_datasets(script_args, training_args):
    """(train, eval) datasets for `ILTrainer` from the parsed arguments.

    Deterministic given the seed, so every process of a distributed run builds the same rows.
    """
    if not script_args.dataset_paths:
        raise DataFileError("no training data: set dataset_paths (trajectory JSONL files or saved datasets)")
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    kwargs = dict(seed=seed, max_candidates=training_args.max_candidates, min_reward=script_args.min_reward)
    train = load_decision_steps(script_args.dataset_paths, **kwargs)
    if script_args.eval_dataset_paths:
        eval_ = load_decision_steps(script_args.eval_dataset_paths, **kwargs)
    else:
        train, eval_ = split_by_group(train, script_args.eval_fraction, seed)
    train = subsample(train, script_args.max_train_samples, seed)
    eval_ = subsample(eval_, script_args.max_eval_samples, seed)
    return train, eval_


@dataclass
class ILDataCollator:
    """Batch decision steps for `ActionScorerModel`: pages with any number of candidates.

    Each feature needs ``observation``, ``candidates`` (or ``available_actions``) and ``label``
    (or ``action``, the chosen string); other keys are ignored. Returns the processor's tensors
    (see `ActionScoringProcessor`) with ``labels`` [B].
    """

    processor: ActionScoringProcessor

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if len(features) == 0:
            raise ValueError("ILDataCollator got an empty batch")
        cleaned = []
        for i, f in enumerate(features):
            row = {k: f[k] for k in MODEL_COLUMNS if k in f and f[k] is not None}
            if "labels" in row and "label" not in row:
                row["label"] = row.pop("labels")
            if "label" not in row and "action" not in row:
                raise ValueError(f"feature {i} has no label (index of the chosen candidate) or action")
            cleaned.append(row)
        batch = self.processor.collate(cleaned)
        if "labels" not in batch:
            raise ValueError("ILDataCollator: features without labels")
        return dict(batch)


__all__ = [
    "ILDataCollator",
    "IGNORE_INDEX",
    "build_il_datasets",
    "expand_paths",
    "load_decision_steps",
    "split_by_group",
    "subsample",
    "trajectory_rows",
]
