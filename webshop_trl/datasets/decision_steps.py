"""Choice decisions of trajectories: (observation, candidate clicks, chosen index) per step.

The choice policy scores the click actions of a page; the search query comes from a separate
search policy. So, as WebShop's IL data does (WEBSHOP_SPEC §5.5), search steps are not choice
decisions and are skipped. Pages with many candidates keep the first 6 plus 10 drawn at random,
always keeping the chosen action, as WebShop does past 20.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from webshop_trl.trajectories.format import Trajectory

MAX_CANDIDATES = 20
KEEP_FIRST = 6
KEEP_RANDOM = 10


@dataclass
class DecisionStep:
    observation: str
    candidates: list[str]
    label: int  # index of the chosen action in candidates
    goal_index: int
    step: int  # position of this step in its trajectory
    source: str
    reward: float  # the trajectory's final reward
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> str:
        return self.candidates[self.label]


def click_candidates(available_actions: Iterable[str]) -> list[str]:
    """The click actions of a page, in page order (search and its placeholder excluded)."""
    return [a for a in available_actions if a.startswith("click[")]


def limit_candidates(candidates: list[str], chosen: str, rng: random.Random,
                     max_candidates: int = MAX_CANDIDATES) -> list[str]:
    """Above ``max_candidates``: the first 6 plus 10 random others, the chosen one always kept."""
    if len(candidates) <= max_candidates:
        return list(candidates)
    head = candidates[:KEEP_FIRST]
    rest = candidates[KEEP_FIRST:]
    picked = set(rng.sample(range(len(rest)), KEEP_RANDOM))
    kept = head + [a for i, a in enumerate(rest) if i in picked]
    if chosen not in kept:
        kept[-1] = chosen
    return kept


def decision_steps(
    trajectories: Iterable[Trajectory],
    seed: int = 0,
    max_candidates: int | None = MAX_CANDIDATES,
    skipped: list[str] | None = None,
) -> Iterator[DecisionStep]:
    """Yield the click decisions of each trajectory. A click that is not among its page's
    candidates (e.g. a logged human click the catalog cannot show) is skipped and, if
    ``skipped`` is given, described there."""
    rng = random.Random(seed)
    for t_index, traj in enumerate(trajectories):
        goal_index = int(traj.goal.get("index", -1))
        for s_index, step in enumerate(traj.steps):
            if not step.action.startswith("click["):
                continue
            candidates = click_candidates(step.available_actions)
            if step.action not in candidates or not step.observation:
                if skipped is not None:
                    why = "no observation" if not step.observation else "chosen action not among the candidates"
                    skipped.append(f"trajectory {t_index} step {s_index}: {why} ({step.action[:80]})")
                continue
            if max_candidates is not None:
                candidates = limit_candidates(candidates, step.action, rng, max_candidates)
            yield DecisionStep(
                observation=step.observation,
                candidates=candidates,
                label=candidates.index(step.action),
                goal_index=goal_index,
                step=s_index,
                source=traj.source,
                reward=traj.final_reward,
            )
