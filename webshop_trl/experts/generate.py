"""Expert demonstrations as trajectories: play the oracle's plan in `WebShopEnv` and record it.

    from webshop_trl.experts import ExpertConfig, generate_expert_demos, write_expert_demos
    for traj in generate_expert_demos(range(1500, 1520), ExpertConfig().noisy(seed=1)):
        ...
    write_expert_demos("demos.jsonl", goals, ExpertConfig())   # appends per episode; resumable

Every action is played in a real environment, so a trajectory holds what the environment showed
(observation and available actions before each action) and the reward it gave; an action the
environment rejects is a bug, reported as the failure ``invalid_action``.

Each trajectory has ``source="expert"`` and metadata: the expert config and seed, the goal index,
the query used and every query tried, whether the goal's product was found, what was bought
with which options, the reward parts, the noise events, and for a reward below 1.0 the
``failure`` class and a ``failure_detail`` (see `EpisodePlan.failure`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from webshop_trl.envs.config import WebShopConfig
from webshop_trl.errors import DataFileError, UnknownGoalError, WebShopTrlError
from webshop_trl.experts.config import ExpertConfig
from webshop_trl.experts.oracle import PERFECT, ExpertAgent
from webshop_trl.trajectories.format import Step, Trajectory, append_trajectory

SOURCE = "expert"


def _env_metadata(config: WebShopConfig) -> dict[str, Any]:
    return {
        "observation_mode": config.observation_mode, "step_limit": config.step_limit,
        "search_engine": config.search_engine, "goal_kind": config.goal_kind, "seed": config.seed,
        "faithful_reward_quirks": config.faithful_reward_quirks, "search_anywhere": config.search_anywhere,
    }


def _check_indices(agent: ExpertAgent, goal_indices: Iterable[int]) -> list[int]:
    indices = list(goal_indices)
    goals = agent.backend.goals
    for i in indices:
        goals[i]  # raises UnknownGoalError naming the index and the valid range
    return [int(i) for i in indices]


def run_expert_episode(env: Any, agent: ExpertAgent, goal_index: int) -> Trajectory:
    """Plan the goal's episode, play it in ``env`` and return the recorded trajectory."""
    started = time.perf_counter()
    plan = agent.plan(goal_index)
    obs, info = env.reset(options={"goal_index": goal_index})
    traj = Trajectory(goal=env.goal.to_dict(), source=SOURCE)
    reward, terminated, truncated = 0.0, False, False
    invalid: str | None = None
    final_info: dict[str, Any] = {}
    for action in plan.actions:
        next_obs, reward, terminated, truncated, next_info = env.step(action)
        traj.steps.append(Step(obs, list(info["available_actions"]), action, float(reward)))
        obs, info = next_obs, next_info
        if not next_info["valid_action"]:
            invalid = f"step {len(traj.steps)}: {action!r}: {next_info.get('invalid_reason')}"
            break
        if terminated or truncated:
            final_info = next_info
            break
    traj.final_reward = float(reward) if terminated else 0.0
    failure, detail = plan.failure()
    if invalid is not None:
        failure, detail = "invalid_action", invalid
    elif not terminated and plan.pick is not None:
        failure, detail = "step_limit", f"no purchase within {env.config.step_limit} steps"
    elif terminated and traj.final_reward < PERFECT and failure is None:
        failure, detail = "reward_mismatch", f"planned {plan.expected_reward:.4f}, got {traj.final_reward:.4f}"
    target = plan.target
    traj.metadata = {
        "goal_index": goal_index,
        "expert": agent.config.to_dict(),
        "seed": agent.config.seed,
        "noise": agent.config.has_noise,
        "env": _env_metadata(env.config),
        "completed": bool(terminated),
        "query": plan.query,
        "query_kind": plan.query_kind,
        "queries_tried": [o.summary() for o in plan.outcomes],
        "found_target": plan.target_found,
        "target_rank": next((o.target_rank for o in plan.outcomes if o.query == plan.query), None),
        "target_best_reward": round(target.reward, 6),
        "target_corrected_reward": None if plan.target_corrected_reward is None else round(plan.target_corrected_reward, 6),
        "chosen_asin": plan.pick.asin if plan.pick else None,
        "chosen_is_target": bool(plan.pick and plan.pick.asin == plan.target_asin),
        "chosen_rank": plan.pick_rank,
        "planned_reward": round(plan.expected_reward, 6),
        "best_in_reach": round(plan.best_in_reach, 6),
        "purchased_asin": final_info.get("purchased_asin"),
        "selected_options": final_info.get("selected_options"),
        "reward_breakdown": final_info.get("reward_breakdown"),
        "failure": failure,
        "failure_detail": detail,
        "noise_events": plan.noise_events,
        "essential_steps": plan.essential_steps,
        "num_steps": len(traj.steps),
        "seconds": round(time.perf_counter() - started, 4),
    }
    return traj


def generate_expert_demos(
    goal_indices: Iterable[int],
    config: ExpertConfig | None = None,
    env_config: WebShopConfig | None = None,
    *,
    env: Any = None,
) -> Iterator[Trajectory]:
    """Yield one expert trajectory per goal index, in order.

    Every index is checked before the first episode: an unknown one raises `UnknownGoalError`
    (naming the valid range) before anything is generated. Pass ``env`` to reuse an existing
    `WebShopEnv` (its config then wins over ``env_config``).
    """
    from webshop_trl.envs import WebShopEnv

    config = config or ExpertConfig()
    if env is None:
        env = WebShopEnv(env_config or WebShopConfig())
    agent = ExpertAgent(config, env=env)
    indices = _check_indices(agent, goal_indices)
    for goal_index in indices:
        yield run_expert_episode(env, agent, goal_index)


# ---------------------------------------------------------------------------- files and resume


class ResumeMismatchError(WebShopTrlError):
    """The output file holds demos made with other settings; resuming would mix them."""


def _settings_signature(config: ExpertConfig, env_config: WebShopConfig) -> dict[str, Any]:
    return {"expert": config.to_dict(), "env": _env_metadata(env_config)}


def existing_goal_indices(path: str | Path, config: ExpertConfig, env_config: WebShopConfig) -> set[int]:
    """Goal indices already in an expert demo file made with the same settings.

    A cut-off last line (a killed writer) is removed from the file so appending can continue.
    Raises `ResumeMismatchError` if a record was made with another expert or env config.
    """
    path = Path(path)
    if not path.is_file():
        return set()
    _drop_partial_last_line(path)
    wanted = _settings_signature(config, env_config)
    done: set[int] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                meta = data["metadata"]
                have = {"expert": meta["expert"], "env": meta["env"]}
                index = int(meta["goal_index"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFileError(f"{path}:{lineno}: not an expert demo record ({exc}); use another --output or --overwrite") from None
            if data.get("source") != SOURCE or have != wanted:
                raise ResumeMismatchError(
                    f"{path}:{lineno}: made with other settings ({_diff(have, wanted)}); "
                    "use another output file, the same settings, or overwrite"
                )
            done.add(index)
    return done


def _diff(have: dict[str, Any], wanted: dict[str, Any]) -> str:
    out = []
    for part in ("expert", "env"):
        a, b = have.get(part) or {}, wanted[part]
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append(f"{part}.{k}: file {a.get(k)!r} vs now {b.get(k)!r}")
    return "; ".join(out[:4]) or "source is not 'expert'"


def _drop_partial_last_line(path: Path) -> None:
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # find the last newline and cut after it
        pos = size - 1
        chunk = 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            block = fh.read(pos - start)
            k = block.rfind(b"\n")
            if k >= 0:
                fh.truncate(start + k + 1)
                return
            pos = start
        fh.truncate(0)


def write_expert_demos(
    path: str | Path,
    goal_indices: Iterable[int],
    config: ExpertConfig | None = None,
    env_config: WebShopConfig | None = None,
    *,
    resume: bool = True,
    overwrite: bool = False,
    env: Any = None,
    on_episode: Any = None,
) -> dict[str, int]:
    """Append one trajectory per goal to ``path`` (a line each, flushed and fsynced).

    An interrupted run keeps every finished episode. With ``resume`` (the default) goals already
    in the file are skipped, provided the file was made with the same expert and env settings
    (else `ResumeMismatchError`); a cut-off last line is removed first. ``overwrite`` starts the
    file afresh. ``on_episode(trajectory)`` is called after each episode is written.
    Returns ``{"written": n, "skipped": n}``.
    """
    from webshop_trl.envs import WebShopEnv

    config = config or ExpertConfig()
    if env is None:
        env = WebShopEnv(env_config or WebShopConfig())
    agent = ExpertAgent(config, env=env)
    indices = _check_indices(agent, goal_indices)
    path = Path(path)
    if overwrite and path.exists():
        path.unlink()
    done = existing_goal_indices(path, config, env.config) if resume else set()
    if not resume and path.exists() and path.stat().st_size > 0:
        raise ResumeMismatchError(f"{path} exists: resume it or overwrite it")
    written = skipped = 0
    for goal_index in indices:
        if goal_index in done:
            skipped += 1
            continue
        traj = run_expert_episode(env, agent, goal_index)
        append_trajectory(path, traj)
        done.add(goal_index)
        written += 1
        if on_episode is not None:
            on_episode(traj)
    return {"written": written, "skipped": skipped}


__all__ = [
    "SOURCE",
    "generate_expert_demos",
    "run_expert_episode",
    "write_expert_demos",
    "existing_goal_indices",
    "ResumeMismatchError",
    "UnknownGoalError",
]
