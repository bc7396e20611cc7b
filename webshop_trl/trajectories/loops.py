"""Removing looped sub-trajectories (Feng & Feng, §3.2: self-generated demonstrations).

A sampled episode often wanders: opens a product, reads its description, goes back, opens
another, searches again. The paper keeps successful self-generated episodes with their loops
removed. The rule used here, exactly:

1. **State of a step** = the observation the agent saw before acting, compared as a string after
   one normalisation (`state_key`, ``key="page"``, the default): text_rich marks the products
   opened since the last search as ``[clicked button] <asin> [clicked button_]``; those marks
   are rendered as plain buttons, so a results page seen again after opening a product is the
   same state (nothing else about the page or the session changes). Selected options keep their
   marks. ``key="observation"`` compares the raw observations.
2. **Loops** (`find_loops`): scan from the first step; at step i, find the *last* step j >= i with
   the same state. If j > i, steps i..j-1 form a loop: they are cut, and step j's action (what
   followed the last visit) is taken from the first visit. The scan continues at j + 1. Nested
   and repeated loops collapse into one cut (A B C B A D -> A D; A B A B C -> A B C), and the
   result never shows a state twice.
3. **Validity** (`prune_loops` with an ``env``): the pruned actions are replayed in the
   environment from the goal's start. A cut is kept only if every replayed action is valid, the
   episode ends the same way (purchase or not) and with the same reward; the stored trajectory
   is the replay (observations and available actions as the environment shows them on the
   shorter path). Equal observations do not always mean equal sessions (``text`` mode hides
   selected options; a results page does not show its query), so when cutting every loop at
   once fails, single cuts are tried, longest first, and each one that replays validly is kept.
   Without an env the cut is applied to the recorded steps as they are (`cut_loops`): the step
   after a cut keeps its recorded observation, which in text_rich may still mark a product
   opened inside the removed loop.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from webshop_trl.trajectories.format import Step, Trajectory

LOOP_KEYS = ("page", "observation")
# A visited product link in text_rich: its own line, not indented (option values are indented).
_VISITED_LINK = re.compile(r"^\[clicked button\] (.*?) \[clicked button_\]$", re.MULTILINE)
_REWARD_TOLERANCE = 1e-9


def state_key(observation: str, key: str = "page") -> str:
    """The string two steps must share to count as the same state (see the module docstring)."""
    if key == "observation":
        return observation
    if key == "page":
        return _VISITED_LINK.sub(r"[button] \1 [button_]", observation)
    raise ValueError(f"unknown loop key {key!r}: choose one of {', '.join(LOOP_KEYS)}")


def find_loops(keys: Sequence[Hashable]) -> list[tuple[int, int]]:
    """The cuts (first visit i, last visit j), j > i, of a sequence of states: steps i..j-1 go,
    step j stays (moved to the first visit's place)."""
    last = {k: n for n, k in enumerate(keys)}
    loops = []
    i = 0
    while i < len(keys):
        j = last[keys[i]]
        if j > i:
            loops.append((i, j))
        i = j + 1
    return loops


def cut_loops(steps: Sequence[Step], loops: Sequence[tuple[int, int]]) -> list[Step]:
    """``steps`` with each loop (i, j) cut: step j's action, available actions and reward on step
    i's observation (the first visit, what the shorter path shows there)."""
    start_of = {j: i for i, j in loops}
    dropped = set()
    for i, j in loops:
        if not 0 <= i < j < len(steps):
            raise ValueError(f"loop {(i, j)} is outside a {len(steps)}-step trajectory")
        dropped.update(range(i, j))
    out = []
    for n, step in enumerate(steps):
        if n in dropped:
            continue
        if n in start_of:
            step = dataclasses.replace(step, observation=steps[start_of[n]].observation)
        out.append(dataclasses.replace(step, available_actions=list(step.available_actions)))
    return out


@dataclass
class Replay:
    """A trajectory's actions played in the environment."""

    steps: list[Step]
    valid: bool  # every action accepted
    terminated: bool  # ended with a purchase
    reward: float  # final reward (0 without a purchase)
    invalid: str | None = None  # the first rejected action and why


def replay_actions(env: Any, goal_index: int, actions: Sequence[str]) -> Replay:
    """Play ``actions`` from the start of goal ``goal_index`` in ``env`` (a `WebShopEnv`) and
    record what it shows. Stops at the first rejected action, the purchase or the step limit."""
    obs, info = env.reset(options={"goal_index": int(goal_index)})
    steps: list[Step] = []
    reward, terminated = 0.0, False
    for action in actions:
        next_obs, reward, terminated, truncated, next_info = env.step(action)
        steps.append(Step(obs, list(info["available_actions"]), action, float(reward)))
        if not next_info["valid_action"]:
            why = f"step {len(steps) - 1}: {action!r}: {next_info.get('invalid_reason')}"
            return Replay(steps, False, False, 0.0, why)
        obs, info = next_obs, next_info
        if terminated or truncated:
            break
    complete = len(steps) == len(actions)
    return Replay(steps, complete, bool(terminated), float(reward) if terminated else 0.0,
                  None if complete else f"the episode ended after {len(steps)} of {len(actions)} actions")


@dataclass
class PruneResult:
    trajectory: Trajectory
    loops_removed: int  # cuts kept
    steps_removed: int
    refused: int = 0  # cuts tried and refused because the replay differed
    replays: int = 0  # replays run


def _bought(traj: Trajectory) -> bool:
    return bool(traj.steps) and traj.steps[-1].action.strip().lower() == "click[buy now]"


def prune_loops(
    trajectory: Trajectory,
    *,
    key: str = "page",
    env: Any = None,
    goal_index: int | None = None,
    max_replays: int = 200,
) -> PruneResult:
    """Remove the loops of ``trajectory`` (rule in the module docstring).

    With ``env`` (a `WebShopEnv` configured as the one that recorded the trajectory) every cut
    is checked by replay and the result is the replayed trajectory; ``goal_index`` defaults to
    ``trajectory.goal["index"]``. At most ``max_replays`` replays are run (the longest cuts are
    tried first; what is pruned by then is kept). The input is not modified; metadata is copied.
    """
    steps = list(trajectory.steps)
    result = PruneResult(dataclasses.replace(trajectory, steps=steps, metadata=dict(trajectory.metadata)), 0, 0)
    if env is None:
        loops = find_loops([state_key(s.observation, key) for s in steps])
        if loops:
            result.trajectory.steps = cut_loops(steps, loops)
            result.loops_removed = len(loops)
            result.steps_removed = len(steps) - len(result.trajectory.steps)
        return result

    goal = int(trajectory.goal["index"]) if goal_index is None else int(goal_index)
    want_bought = _bought(trajectory)
    want_reward = float(trajectory.final_reward) if want_bought else 0.0

    def replay_ok(candidate: list[Step]) -> list[Step] | None:
        result.replays += 1
        r = replay_actions(env, goal, [s.action for s in candidate])
        if not r.valid or r.terminated != want_bought or abs(r.reward - want_reward) > _REWARD_TOLERANCE:
            return None
        return r.steps

    current = steps
    while result.replays < max_replays:
        keys = [state_key(s.observation, key) for s in current]
        loops = find_loops(keys)
        if not loops:
            break
        replayed = replay_ok(cut_loops(current, loops))
        if replayed is not None:
            result.loops_removed += len(loops)
            current = replayed
            continue
        result.refused += 1
        accepted = None
        for i, j in _single_cuts(keys):
            if len(loops) == 1 and (i, j) == loops[0]:
                continue  # just refused
            if result.replays >= max_replays:
                break
            accepted = replay_ok(cut_loops(current, [(i, j)]))
            if accepted is not None:
                break
            result.refused += 1
        if accepted is None:
            break
        result.loops_removed += 1
        current = accepted
    result.trajectory.steps = current
    result.steps_removed = len(steps) - len(current)
    return result


def _single_cuts(keys: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Every (i, j), i < j, with the same state, longest cut first."""
    seen: dict[Hashable, list[int]] = {}
    for n, k in enumerate(keys):
        seen.setdefault(k, []).append(n)
    pairs = [(i, j) for visits in seen.values() for a, i in enumerate(visits) for j in visits[a + 1:]]
    return sorted(pairs, key=lambda p: (p[0] - p[1], p[0]))


__all__ = ["LOOP_KEYS", "state_key", "find_loops", "cut_loops", "replay_actions", "Replay", "prune_loops", "PruneResult"]
