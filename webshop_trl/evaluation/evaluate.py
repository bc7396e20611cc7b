"""Run an agent on every goal of a split with the vector environment and summarise.

Metrics as WebShop reports them (WEBSHOP_SPEC §4.7): score = 100 x mean reward, success rate =
% of episodes with reward exactly 1; plus the mean of each reward part, steps per episode and
invalid actions. An episode that never buys scores 0.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from webshop_trl.agents.base import Agent
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.vector import WebShopVectorEnv, session_info
from webshop_trl.paths import write_json_atomic

REWARD_PARTS = ("r_att", "r_option", "r_price", "r_type")


@dataclass
class EpisodeResult:
    goal_index: int
    reward: float
    success: bool
    steps: int
    invalid_actions: int
    purchased: bool
    purchased_asin: str | None = None
    breakdown: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    agent: str
    split: str
    split_mode: str
    goal_kind: str
    episodes: list[EpisodeResult]
    seconds: float

    def summary(self) -> dict[str, Any]:
        n = len(self.episodes)
        rewards = [e.reward for e in self.episodes]
        out: dict[str, Any] = {
            "agent": self.agent,
            "split": self.split,
            "split_mode": self.split_mode,
            "goal_kind": self.goal_kind,
            "episodes": n,
            "score": 100.0 * statistics.fmean(rewards) if n else 0.0,
            "success_rate": 100.0 * sum(e.success for e in self.episodes) / n if n else 0.0,
            "purchase_rate": 100.0 * sum(e.purchased for e in self.episodes) / n if n else 0.0,
            "mean_steps": statistics.fmean(e.steps for e in self.episodes) if n else 0.0,
            "invalid_actions": sum(e.invalid_actions for e in self.episodes),
            "seconds": round(self.seconds, 2),
        }
        for part in REWARD_PARTS:  # means over purchases that have the part (r_option needs options)
            values = [e.breakdown[part] for e in self.episodes if e.breakdown.get(part) is not None]
            out[f"mean_{part}"] = 100.0 * statistics.fmean(float(v) for v in values) if values else None
        return out

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "episodes": [asdict(e) for e in self.episodes]}

    def save(self, path: str | Path) -> Path:
        """Write atomically: a killed run never leaves a truncated result file."""
        return write_json_atomic(path, self.to_json())


def evaluate_agent(
    agent: Agent,
    config: WebShopConfig | None = None,
    split: str = "test",
    split_mode: str = "index",
    num_envs: int = 8,
    max_goals: int | None = None,
    goal_indices: list[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Run ``agent`` once on each goal of ``split`` (or on ``goal_indices``)."""
    config = config or WebShopConfig()
    envs = WebShopVectorEnv(num_envs, config)
    goals = goal_indices if goal_indices is not None else envs.backend.goals.split(split, split_mode)
    if max_goals is not None:
        goals = goals[:max_goals]
    invalid = [0] * num_envs
    results: list[EpisodeResult] = []
    start = time.perf_counter()
    obs, infos = envs.reset(seed=seed, options={"goal_queue": list(goals)})
    with Progress(
        TextColumn(f"[bold]{agent.name}[/] on {split}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("score {task.fields[score]:.1f}  SR {task.fields[sr]:.1f}%"), TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("eval", total=len(goals), score=0.0, sr=0.0)
        while envs.active.any():
            active = [i for i in range(num_envs) if envs.active[i]]
            actions: list[str | None] = [None] * num_envs
            chosen = agent.act([obs[i] for i in active], [session_info(infos, i) for i in active])
            for i, a in zip(active, chosen):
                actions[i] = a
            obs, rewards, terms, truncs, infos = envs.step(actions)
            for i in active:
                step_info = infos["final_info"] if (terms[i] or truncs[i]) else infos
                if not session_info(step_info, i).get("valid_action", True):
                    invalid[i] += 1
                if terms[i] or truncs[i]:
                    final = session_info(infos["final_info"], i)
                    breakdown = final.get("reward_breakdown") or {}
                    results.append(
                        EpisodeResult(
                            goal_index=int(final["goal_index"]),
                            reward=float(rewards[i]),
                            success=bool(terms[i]) and float(rewards[i]) == 1.0,
                            steps=int(final["step"]),
                            invalid_actions=invalid[i],
                            purchased=bool(terms[i]),
                            purchased_asin=final.get("purchased_asin"),
                            breakdown=breakdown,
                        )
                    )
                    invalid[i] = 0
                    done = results
                    bar.update(
                        task, advance=1,
                        score=100 * statistics.fmean(r.reward for r in done),
                        sr=100 * sum(r.success for r in done) / len(done),
                    )
    results.sort(key=lambda e: e.goal_index)
    return EvalResult(agent.name, split, split_mode, config.goal_kind, results, time.perf_counter() - start)
