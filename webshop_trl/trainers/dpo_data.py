"""Preference data for `ActionDPOTrainer`: loading, checking, and the collator.

A row is one decision step: ``prompt`` (the observation), ``chosen`` and ``rejected`` (two of the
page's candidate actions) and ``available_actions`` (all of them), as written by
``webshop-trl build-preferences`` (`webshop_trl.preferences`). ``chosen_index`` /
``rejected_index`` (positions in ``available_actions``) are used when present and found from the
strings otherwise; ``instruction`` is passed to the processor when present. Other columns are
bookkeeping that the trainer drops.

Nothing is tokenised ahead of time: the collator tokenises each batch with the policy's
`ActionScoringProcessor` (a fast tokenizer; the page and each distinct action once per batch), as
the IL collator does. So preparing a dataset writes no cache file.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from webshop_trl.errors import DataFileError
from webshop_trl.policy.processing_action_scorer import ActionScoringProcessor

PAIR_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected", "available_actions")
INDEX_COLUMNS: tuple[str, ...] = ("chosen_index", "rejected_index")
REF_COLUMNS: tuple[str, ...] = ("ref_chosen_logps", "ref_rejected_logps")
# Columns the collator reads; `remove_unused_columns` drops the others.
COLLATOR_COLUMNS: tuple[str, ...] = PAIR_COLUMNS + INDEX_COLUMNS + ("instruction",) + REF_COLUMNS
# Names other datasets use for the same thing (IL decision steps, TRL's column names).
COLUMN_ALIASES: dict[str, str] = {"observation": "prompt", "candidates": "available_actions"}


def normalize_columns(dataset):
    """``dataset`` with the aliases of `COLUMN_ALIASES` renamed (observation -> prompt, ...)."""
    names = list(dataset.column_names or [])
    for alias, name in COLUMN_ALIASES.items():
        if alias in names and name not in names:
            dataset = dataset.rename_column(alias, name)
            names = list(dataset.column_names)
    return dataset


def pair_indices(row: Mapping[str, Any], where: str = "row") -> tuple[int, int]:
    """(chosen, rejected) positions in the row's ``available_actions``; raises on a bad row."""
    cands = row.get("available_actions")
    if cands is None or isinstance(cands, str) or len(cands) == 0:
        raise ValueError(f"{where}: available_actions must be a non-empty list of action strings, got {cands!r}")
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError(
            f"{where}: prompt must be the observation string, got {type(prompt).__name__} "
            "(conversational prompts are not supported by the action-scoring policy)"
        )
    out = []
    for side in ("chosen", "rejected"):
        action = row.get(side)
        index = row.get(f"{side}_index")
        if index is not None:
            index = int(index)
            if not 0 <= index < len(cands):
                raise ValueError(f"{where}: {side}_index={index} is out of range for {len(cands)} available actions")
            if action is not None and cands[index] != action:
                raise ValueError(f"{where}: {side}_index={index} points at {cands[index]!r}, not the {side} action {action!r}")
        else:
            if not isinstance(action, str):
                raise ValueError(f"{where}: {side} must be an action string, got {type(action).__name__}")
            try:
                index = list(cands).index(action)
            except ValueError:
                raise ValueError(f"{where}: the {side} action {action!r} is not among its available_actions") from None
        out.append(index)
    if out[0] == out[1]:
        raise ValueError(f"{where}: chosen and rejected are the same action ({cands[out[0]]!r})")
    return out[0], out[1]


def check_preference_dataset(dataset, name: str = "train"):
    """Rename column aliases and check every row (map-style datasets; an `IterableDataset` is
    checked batch by batch by the collator). Returns the dataset; writes nothing."""
    import datasets

    dataset = normalize_columns(dataset)
    names = dataset.column_names
    if names is not None:  # an IterableDataset of unknown features has None
        missing = [c for c in PAIR_COLUMNS if c not in names]
        if missing:
            raise DataFileError(
                f"the {name} preference dataset lacks the columns {missing} (has {names}); it needs "
                f"{list(PAIR_COLUMNS)} as written by `webshop-trl build-preferences`"
            )
    if isinstance(dataset, datasets.Dataset):
        if len(dataset) == 0:
            raise DataFileError(f"the {name} preference dataset is empty")
        present = [c for c in PAIR_COLUMNS + INDEX_COLUMNS if c in dataset.column_names]
        columns = {c: dataset[c] for c in present}
        for i in range(len(dataset)):
            row = {c: columns[c][i] for c in present}
            try:
                pair_indices(row, where=f"{name} row {i}")
            except ValueError as err:
                raise DataFileError(str(err)) from None
    return dataset


def find_build_info(dataset) -> dict | None:
    """The ``build_info.json`` of the `webshop-trl build-preferences` folder a dataset was loaded
    from (``load_from_disk`` of the folder or of one split), found from its Arrow files; None for
    a dataset built in memory, from the Hub cache, or from anywhere else."""
    import json
    from pathlib import Path

    from webshop_trl.preferences.build import BUILD_INFO_NAME, FORMAT_ID

    for entry in getattr(dataset, "cache_files", None) or []:
        filename = entry.get("filename") if isinstance(entry, Mapping) else None
        if not filename:
            continue
        for folder in list(Path(filename).parents)[:3]:  # <folder>/<split>/data-*.arrow or <folder>/data-*.arrow
            candidate = folder / BUILD_INFO_NAME
            if candidate.is_file():
                try:
                    info = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(info, dict) and info.get("format") == FORMAT_ID:
                    return info
    return None


def load_build_info(script_args) -> dict | None:
    """The ``build_info.json`` of ``script_args.dataset_name``: from the folder, or downloaded from
    the Hub dataset repo (``build-preferences --push-to-hub`` uploads it); None where there is none."""
    import json
    from pathlib import Path

    from webshop_trl.preferences.build import BUILD_INFO_NAME, FORMAT_ID

    name = script_args.dataset_name
    if not name:
        return None
    path: Path | None = None
    if os.path.isdir(name):
        path = Path(name) / BUILD_INFO_NAME
        if not path.is_file():
            return None
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, BUILD_INFO_NAME, repo_type="dataset", revision=script_args.dataset_revision))
        except Exception:  # no such file, offline, not a Hub id: no build info
            return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT_ID else None


def subsample(dataset, n: int | None, seed: int = 0):
    """At most ``n`` rows drawn at random, kept in their order (in memory: no cache file is written)."""
    if dataset is None or n is None or n >= len(dataset):
        return dataset
    return dataset.select(sorted(random.Random(seed).sample(range(len(dataset)), int(n))))


def load_preference_datasets(script_args, training_args):
    """(train, eval or None) from the parsed arguments (`DPOScriptArguments`, the config).

    ``dataset_name`` is a folder saved with ``save_to_disk`` (a `DatasetDict` with the train/test
    splits, or one `Dataset`, then without evaluation) or a Hub dataset id. Deterministic given the
    seed, so every process of a distributed run gets the same rows.
    """
    import datasets

    name = script_args.dataset_name
    if not name:
        raise DataFileError("no preference data: set dataset_name (a folder from `webshop-trl build-preferences` or a Hub id)")
    if os.path.isdir(name):
        loaded = datasets.load_from_disk(name)
    elif os.path.exists(name) or name.startswith((".", "/", "~")):
        raise DataFileError(f"{name} is not a dataset folder saved with save_to_disk")
    else:
        loaded = datasets.load_dataset(name, name=script_args.dataset_config, revision=script_args.dataset_revision)
    if isinstance(loaded, (datasets.DatasetDict, dict)):
        if script_args.dataset_train_split not in loaded:
            raise DataFileError(f"{name} has no split {script_args.dataset_train_split!r} (splits: {list(loaded)})")
        train = loaded[script_args.dataset_train_split]
        split = script_args.dataset_test_split
        if split and split not in loaded:
            raise DataFileError(f"{name} has no split {split!r} (splits: {list(loaded)}); unset dataset_test_split to skip evaluation")
        eval_ = loaded[split] if split else None
    else:
        train, eval_ = loaded, None
    if script_args.min_reward is not None:
        train, eval_ = (_keep_reward(d, float(script_args.min_reward), name) for d in (train, eval_))
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    train = subsample(train, script_args.max_train_samples, seed)
    eval_ = subsample(eval_, script_args.max_eval_samples, seed)
    if eval_ is not None and len(eval_) == 0:
        eval_ = None
    return train, eval_


def _keep_reward(dataset, min_reward: float, name: str):
    if dataset is None:
        return None
    if "reward" not in dataset.column_names:
        raise DataFileError(f"min_reward is set but {name} has no 'reward' column")
    keep = [i for i, r in enumerate(dataset["reward"]) if r is not None and r >= min_reward]
    if not keep:
        raise DataFileError(f"no pair of {name} comes from a trajectory with reward >= {min_reward}")
    return dataset.select(keep)


@dataclass
class ActionDPODataCollator:
    """Batch preference pairs for `ActionScorerModel`: one page per pair, any number of candidates.

    Returns the processor's tensors (``input_ids``, ``action_input_ids``, ``num_candidates``, ...;
    see `ActionScoringProcessor`) plus ``chosen_index`` / ``rejected_index`` [B] (positions within
    each page's candidates) and, when every feature has them, ``ref_chosen_logps`` /
    ``ref_rejected_logps`` [B] (float32; precomputed reference log-probs).
    """

    processor: ActionScoringProcessor

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if len(features) == 0:
            raise ValueError("ActionDPODataCollator got an empty batch")
        observations, candidates, instructions, chosen, rejected = [], [], [], [], []
        for i, f in enumerate(features):
            row = {COLUMN_ALIASES.get(k, k): v for k, v in f.items()}
            c, r = pair_indices(row, where=f"feature {i}")
            observations.append(row["prompt"])
            candidates.append(list(row["available_actions"]))
            instructions.append(row.get("instruction"))
            chosen.append(c)
            rejected.append(r)
        batch = dict(
            self.processor(
                observations, candidates, instructions=instructions if any(x is not None for x in instructions) else None
            )
        )
        batch["chosen_index"] = torch.tensor(chosen, dtype=torch.long)
        batch["rejected_index"] = torch.tensor(rejected, dtype=torch.long)
        has_ref = [all(f.get(k) is not None for k in REF_COLUMNS) for f in features]
        if all(has_ref):
            for key in REF_COLUMNS:
                batch[key] = torch.tensor([float(f[key]) for f in features], dtype=torch.float32)
        elif any(has_ref):
            raise ValueError("some features have precomputed reference log-probs and some do not")
        return batch


__all__ = [
    "COLLATOR_COLUMNS",
    "PAIR_COLUMNS",
    "ActionDPODataCollator",
    "check_preference_dataset",
    "find_build_info",
    "load_build_info",
    "load_preference_datasets",
    "normalize_columns",
    "pair_indices",
    "subsample",
]
