"""WebShop's IL demonstration format (``il_trajs_finalized_images.jsonl``, WEBSHOP_SPEC §5.5), both ways.

One JSON object per line::

    {"states": [str],                   # text_rich observation before each action
     "available_actions": [[str]],      # the candidate actions of each step
     "action_idxs": [int],              # index of the chosen candidate; -1 on search steps
     "actions": [str],                  # raw actions: search[...], click[b0...], click[buy now]
     "actions_translate": [str],        # the same, with product clicks as click[item - <title>]
     "images": [0 | [512 floats]]}      # image feature of each step, or 0

The file has no goal field: WebShop finds the goal by normalising ``states[0]`` and looking it up
in ``human_goals.json`` (first occurrence), and that index decides the split. We do the same, so
imported demonstrations fall in the same splits as in WebShop. The file has no reward either.

Importing keeps everything the file holds (``action_idxs``, ``actions_translate`` and, on
request, the image features) in the trajectory's metadata, so export -> import -> export gives
the same lines, and import -> export -> import the same trajectories.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from webshop_trl.data.catalog import Catalog
from webshop_trl.errors import DataFileError
from webshop_trl.trajectories.format import Step, Trajectory
from webshop_trl.trajectories.instructions import (
    HumanGoalIndex,
    instruction_from_state,
    is_search_page_state,
    normalize_instruction,
    price_upper_from_instruction,
    split_of_index,
)
from webshop_trl.trajectories.jsonl import LineErrors, read_json_lines

IL_SOURCE = "webshop-il"
REQUIRED_KEYS = ("states", "available_actions", "action_idxs", "actions")
SEARCH_INDEX = -1  # WebShop marks search steps with action index -1
_CLICK = re.compile(r"^click\[(.+)\]$", re.DOTALL)


class ILRecordError(ValueError):
    """One IL line does not have the shape WebShop's loader expects."""


@dataclass
class ILRecord:
    """One validated line of the IL file."""

    states: list[str]
    available_actions: list[list[str]]
    action_idxs: list[int]
    actions: list[str]
    actions_translate: list[str] | None
    images: list[Any] | None
    reward: float | None

    @classmethod
    def from_json(cls, data: Any) -> "ILRecord":
        if not isinstance(data, dict):
            raise ILRecordError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ILRecordError(f"missing keys {missing}")
        states, avail, idxs, actions = (data[k] for k in REQUIRED_KEYS)
        if not isinstance(states, list) or not states or not all(isinstance(s, str) for s in states):
            raise ILRecordError("'states' must be a non-empty list of strings")
        n = len(states)
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ILRecordError("'actions' must be a list of strings")
        if not isinstance(avail, list) or not all(isinstance(c, list) and all(isinstance(a, str) for a in c) for c in avail):
            raise ILRecordError("'available_actions' must be a list of lists of strings")
        if not isinstance(idxs, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in idxs):
            raise ILRecordError("'action_idxs' must be a list of integers")
        translate = data.get("actions_translate")
        if translate is not None and (not isinstance(translate, list) or not all(isinstance(a, str) for a in translate)):
            raise ILRecordError("'actions_translate' must be a list of strings")
        images = data.get("images")
        if images is not None and not isinstance(images, list):
            raise ILRecordError("'images' must be a list")
        lengths = {"states": n, "available_actions": len(avail), "action_idxs": len(idxs), "actions": len(actions)}
        if translate is not None:
            lengths["actions_translate"] = len(translate)
        if images is not None:
            lengths["images"] = len(images)
        if len(set(lengths.values())) != 1:
            raise ILRecordError(f"per-step lists differ in length: {lengths}")
        for step, (idx, cands) in enumerate(zip(idxs, avail)):
            if not SEARCH_INDEX <= idx < len(cands):
                raise ILRecordError(f"step {step}: action index {idx} is outside its {len(cands)} available actions")
        reward = data.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
            raise ILRecordError(f"'reward' must be a number, got {reward!r}")
        return cls(states, avail, idxs, actions, translate, images, None if reward is None else float(reward))


def _il_goal(state0: str, index: int) -> dict[str, Any]:
    """The goal as far as the IL file tells it: its index, kind and displayed instruction."""
    instruction = instruction_from_state(state0)
    return {
        "index": index,
        "kind": "human",
        "instruction_text": instruction,
        "price_upper": price_upper_from_instruction(instruction),
    }


def il_record_to_trajectory(record: ILRecord, goals: HumanGoalIndex, keep_images: bool = False) -> Trajectory:
    """One IL record as a Trajectory; raises `ILRecordError` when its goal cannot be found."""
    state0 = record.states[0]
    if not is_search_page_state(state0):
        raise ILRecordError(
            'states[0] is not a search page (it must start with "WebShop\\nInstruction:" '
            'or "Amazon Shopping Game\\nInstruction:")'
        )
    index = goals.index_of(state0)
    if index is None:
        raise ILRecordError(f"instruction {normalize_instruction(state0)[:120]!r} is not in human_goals.json")
    reward = record.reward
    steps = [
        Step(observation=s, available_actions=list(c), action=a, reward=0.0)
        for s, c, a in zip(record.states, record.available_actions, record.actions)
    ]
    if reward is not None and steps:
        steps[-1].reward = reward
    metadata: dict[str, Any] = {
        "observation_mode": "text_rich",
        "goal_index": index,
        "split": split_of_index(index),
        "action_idxs": list(record.action_idxs),
        "actions_translate": None if record.actions_translate is None else list(record.actions_translate),
        "reward_known": reward is not None,
    }
    has_features = any(img != 0 for img in record.images or [])
    if keep_images and has_features:
        metadata["images"] = list(record.images)
    elif has_features:
        metadata["image_features_dropped"] = True
    return Trajectory(
        goal=_il_goal(state0, index),
        steps=steps,
        final_reward=reward or 0.0,
        source=IL_SOURCE,
        metadata=metadata,
    )


def import_il_trajectories(
    path: str | Path,
    human_goals_path: str | Path,
    lenient: bool = False,
    skipped: list[str] | None = None,
    keep_images: bool = False,
) -> Iterator[Trajectory]:
    """Yield the trajectories of a WebShop IL file (``il_trajs_finalized_images.jsonl``).

    The goal of each line is found in ``human_goals_path`` (WebShop's human_goals.json) from its
    first state; ``metadata`` keeps ``goal_index``, ``split``, ``action_idxs`` and
    ``actions_translate``. A malformed line, or one whose goal is not in human_goals.json, raises
    `DataFileError` naming file and line; with ``lenient=True`` it is skipped and described in
    ``skipped``. Image features are dropped (flagged in metadata) unless ``keep_images``: they
    are 512 floats per step and our trainers do not read them.
    """
    goals = HumanGoalIndex.load(human_goals_path)  # fail now, not at the first next()
    if not Path(path).is_file():
        raise DataFileError(f"IL trajectory file not found: {path}")
    return _iter_il(Path(path), goals, LineErrors(Path(path), lenient, skipped), keep_images)


def _iter_il(path: Path, goals: HumanGoalIndex, errors: LineErrors, keep_images: bool) -> Iterator[Trajectory]:
    for lineno, data in read_json_lines(path, errors, "IL trajectory"):
        try:
            yield il_record_to_trajectory(ILRecord.from_json(data), goals, keep_images)
        except ILRecordError as exc:
            errors.handle(lineno, f"malformed IL trajectory: {exc}")


# ---------------------------------------------------------------------------------- export
def translate_action(action: str, catalog: Catalog | None) -> str:
    """``click[<asin>]`` as WebShop's baseline shows it, ``click[item - <lowercased title>]``,
    when the catalog knows the product; any other action unchanged."""
    match = _CLICK.match(action)
    if catalog is None or match is None:
        return action
    product = catalog.by_asin.get(match.group(1).strip().upper())
    return action if product is None else f"click[item - {product.title.lower()}]"


def _action_index(step: Step, translated: str) -> int:
    """Where the chosen action sits among the step's candidates (-1 for a search)."""
    if step.action.startswith("search["):
        return SEARCH_INDEX
    for wanted in (step.action, translated):
        if wanted in step.available_actions:
            return step.available_actions.index(wanted)
    lowered = [a.lower() for a in step.available_actions]
    for wanted in (step.action.lower(), translated.lower()):
        if wanted in lowered:
            return lowered.index(wanted)
    raise ValueError(f"action {step.action[:120]!r} is not among the step's {len(step.available_actions)} available actions")


def _stored(metadata: dict[str, Any], key: str, n: int) -> list[Any] | None:
    """A per-step list kept in metadata by the importer, if it still fits the steps."""
    value = metadata.get(key)
    return value if isinstance(value, list) and len(value) == n else None


def trajectory_to_il_record(trajectory: Trajectory, catalog: Catalog | None = None) -> dict[str, Any]:
    """Our Trajectory as one IL line (a dict with WebShop's keys, in WebShop's order).

    Lists an importer kept in metadata (``action_idxs``, ``actions_translate``, ``images``) are
    written back as they were, so nothing is re-derived differently; otherwise the indices are
    found among the available actions and product clicks are translated with ``catalog``.
    Raises ValueError when the first observation is not a text_rich search page (WebShop's
    loader could not find the goal) or a click is not among its step's available actions.
    Empty observations (session-log pages the catalog could not draw) are written as empty
    states: keep only trajectories whose ``metadata['observations']`` is 'complete' for training.
    """
    steps = trajectory.steps
    n = len(steps)
    if not steps:
        raise ValueError("a trajectory with no steps has no IL form")
    if not is_search_page_state(steps[0].observation):
        raise ValueError(
            "the first observation is not a text_rich search page, so WebShop could not find the goal "
            f"(starts with {steps[0].observation[:40]!r})"
        )
    translate = _stored(trajectory.metadata, "actions_translate", n) or [translate_action(s.action, catalog) for s in steps]
    idxs = _stored(trajectory.metadata, "action_idxs", n)
    if idxs is None or any(not SEARCH_INDEX <= i < len(s.available_actions) for i, s in zip(idxs, steps)):
        idxs = []
        for k, (step, translated) in enumerate(zip(steps, translate)):
            try:
                idxs.append(_action_index(step, translated))
            except ValueError as exc:
                raise ValueError(f"step {k}: {exc}") from None
    images = _stored(trajectory.metadata, "images", n) or [0] * n
    return {
        "states": [s.observation for s in steps],
        "available_actions": [list(s.available_actions) for s in steps],
        "action_idxs": idxs,
        "actions": [s.action for s in steps],
        "actions_translate": translate,
        "images": images,
    }


def export_il_trajectories(trajectories: Iterable[Trajectory], path: str | Path, catalog: Catalog | None = None) -> int:
    """Write trajectories as WebShop IL lines (atomically: temp file, then rename); returns how
    many were written. A trajectory that has no IL form raises ValueError naming its position."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for k, trajectory in enumerate(trajectories):
                try:
                    record = trajectory_to_il_record(trajectory, catalog)
                except ValueError as exc:
                    raise ValueError(f"trajectory {k} ({trajectory.source}): {exc}") from None
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n
