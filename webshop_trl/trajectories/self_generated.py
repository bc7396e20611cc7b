"""Self-generated demonstrations (Feng & Feng, §3.2): successful rollouts of the policy itself.

    from webshop_trl.trajectories.self_generated import SelfGenConfig, generate_self_trajectories
    summary = generate_self_trajectories("self.jsonl", SelfGenConfig(checkpoint="checkpoints/il"))
    print(format_self_summary(summary))

The policy checkpoint (`PolicyAgent`: search policy + BERT choice policy) plays train goals with
sampling (``temperature``), many sessions at once on the vector environment. An episode is
**kept** when it ends with a purchase (``require_purchase``) whose reward is >= ``threshold``
(default 1.0); its loops are removed (`webshop_trl.trajectories.loops`: equal states, first visit
to what followed the last visit, checked by replay) and it is appended to the output file with
``source="self-generated"``. The run stops once ``num_keep`` (default 100) are kept, after
``max_episodes`` episodes, or when the goals run out.

Goals: the split's goals (or ``goal_indices``), shuffled with ``seed`` unless ``shuffle=False``;
each goal is tried once. Episodes are committed **in goal order** (a finished episode waits for
the ones before it), and each sampled decision has its own seed (goal, step; see `PolicyAgent`),
so the file does not depend on ``num_envs`` and an interrupted run, resumed, ends with what an
uninterrupted one writes.

Files:

* ``OUTPUT`` (JSON lines, `webshop_trl.trajectories.format`): the kept trajectories, one per line,
  appended, flushed and fsynced per episode. Metadata: the checkpoint (path and fingerprint),
  temperature, seed, threshold, query source, the episode number and how many episodes had been
  tried when it was kept, steps before/after pruning, loops removed, the actions as played, the
  reward parts, and the settings signature (what resuming compares).
* ``<OUTPUT stem>.attempts.jsonl``: a header with the settings, then one line per episode tried
  (goal, reward, kept or why not, steps before/after pruning). Resuming skips every goal tried
  before, kept or not, and continues the count. A cut-off last line (a killed writer) is dropped.

Resuming a file made with other settings (checkpoint contents, temperature, seed, threshold,
query source, pruning, goal order, environment) raises `ResumeMismatchError`; ``num_keep``,
``max_episodes``, ``num_envs`` and ``device`` may change between runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from webshop_trl.envs.config import WebShopConfig
from webshop_trl.errors import DataFileError
from webshop_trl.experts.generate import ResumeMismatchError, _drop_partial_last_line, _env_metadata
from webshop_trl.trajectories.format import Step, Trajectory, append_trajectory, read_trajectories
from webshop_trl.trajectories.loops import LOOP_KEYS, prune_loops

SOURCE = "self-generated"
ATTEMPTS_FORMAT = "webshop-trl/self-generated-attempts/v1"
_TOLERANCE = 1e-9


@dataclass
class SelfGenConfig:
    """What to roll out and what to keep."""

    checkpoint: str = field(metadata={"help": "policy checkpoint folder (ActionScorerModel.save_pretrained)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the choice policy"})
    greedy: bool = field(default=False, metadata={"help": "argmax instead of sampling (each goal then has one outcome)"})
    seed: int = field(default=0, metadata={"help": "seed of the sampling and of the goal shuffle"})
    threshold: float = field(default=1.0, metadata={"help": "keep episodes whose reward is >= this"})
    num_keep: int = field(default=100, metadata={"help": "stop after this many kept trajectories"})
    max_episodes: int | None = field(default=None, metadata={"help": "stop after this many episodes (default: every goal once)"})
    split: str = field(default="train", metadata={"help": "goal split"})
    split_mode: str = field(default="index", metadata={"help": "index (WebShop's) or product split"})
    goal_indices: list[int] | None = field(default=None, metadata={"help": "these goals instead of a split"})
    shuffle: bool = field(default=True, metadata={"help": "shuffle the goals with the seed"})
    query_source: str = field(default="instruction", metadata={"help": "instruction, human or seq2seq"})
    query_model: str | None = field(default=None, metadata={"help": "seq2seq query model folder"})
    query_pick: str = field(default="first", metadata={"help": "first or sample (human/seq2seq queries)"})
    prune: bool = field(default=True, metadata={"help": "remove looped sub-trajectories"})
    loop_key: str = field(default="page", metadata={"help": "state equality for loops: page or observation"})
    require_purchase: bool = field(default=True, metadata={"help": "keep only episodes that bought something"})
    max_candidates: int | None = field(default=None, metadata={"help": "WebShop's test-time candidate cap (off)"})
    num_envs: int = field(default=8, metadata={"help": "sessions stepped together"})
    device: str | None = field(default=None, metadata={"help": "torch device of the policy"})
    batch_size: int | None = field(default=None, metadata={"help": "pages per forward pass (default all)"})

    def validate(self) -> None:
        if self.num_keep < 0:
            raise ValueError(f"num_keep must be >= 0, got {self.num_keep}")
        if self.max_episodes is not None and self.max_episodes < 0:
            raise ValueError(f"max_episodes must be >= 0, got {self.max_episodes}")
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if not self.greedy and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if self.loop_key not in LOOP_KEYS:
            raise ValueError(f"loop_key must be one of {LOOP_KEYS}, got {self.loop_key!r}")

    def signature(self) -> dict[str, Any]:
        """The settings an episode's outcome depends on (compared when resuming)."""
        return {
            "temperature": 0.0 if self.greedy else float(self.temperature), "greedy": self.greedy, "seed": self.seed,
            "threshold": float(self.threshold), "split": None if self.goal_indices is not None else self.split,
            "split_mode": self.split_mode, "goal_indices": _digest(self.goal_indices), "shuffle": self.shuffle,
            "query_source": self.query_source, "query_model": self.query_model, "query_pick": self.query_pick,
            "prune": self.prune, "loop_key": self.loop_key, "require_purchase": self.require_purchase,
            "max_candidates": self.max_candidates,
        }


def _digest(values: Sequence[int] | None) -> str | None:
    if values is None:
        return None
    return hashlib.sha256(json.dumps([int(v) for v in values]).encode()).hexdigest()[:16]


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """sha256 over the checkpoint's config and weight files (names and bytes): a retrained
    checkpoint saved to the same folder is a different checkpoint."""
    folder = Path(path)
    digest = hashlib.sha256()
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin")))
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def attempts_path(output: str | os.PathLike) -> Path:
    """Where the per-episode log of ``output`` lives: ``<stem>.attempts.jsonl`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}.attempts.jsonl")


def goal_order(config: SelfGenConfig, goals: Any) -> list[int]:
    """The goals in the order they are tried (each once; unknown indices raise `UnknownGoalError`)."""
    if config.goal_indices is not None:
        indices = [int(i) for i in config.goal_indices]
        for i in indices:
            goals[i]  # names the valid range
    else:
        indices = list(goals.split(config.split, config.split_mode))
    indices = list(dict.fromkeys(indices))
    if config.shuffle:
        random.Random(f"self-generated:{config.seed}").shuffle(indices)
    return indices


# ----------------------------------------------------------------------------------- resume
@dataclass
class _State:
    tried: set[int] = field(default_factory=set)
    episodes: int = 0  # episodes tried so far
    kept: int = 0


def _read_state(output: Path, log: Path, settings: dict[str, Any]) -> _State:
    state = _State()
    if output.is_file():
        _drop_partial_last_line(output)
        for n, traj in enumerate(read_trajectories(output), 1):
            meta = traj.metadata
            if traj.source != SOURCE or "settings" not in meta:
                raise ResumeMismatchError(f"{output}: trajectory {n} is not a self-generated record; use another output or overwrite")
            if meta["settings"] != settings:
                raise ResumeMismatchError(f"{output}: made with other settings ({_diff(meta['settings'], settings)}); "
                                          "use another output file, the same settings, or overwrite")
            state.tried.add(int(meta["goal_index"]))
            state.episodes = max(state.episodes, int(meta.get("episode", 0)))
            state.kept += 1
    if log.is_file():
        _drop_partial_last_line(log)
        with open(log, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    kind = rec["kind"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataFileError(f"{log}:{lineno}: not an attempt record ({exc})") from None
                if kind == "header":
                    if rec.get("settings") != settings:
                        raise ResumeMismatchError(f"{log}: made with other settings ({_diff(rec.get('settings') or {}, settings)}); "
                                                  "use another output file, the same settings, or overwrite")
                elif kind == "episode":
                    state.tried.add(int(rec["goal_index"]))
                    state.episodes = max(state.episodes, int(rec["episode"]))
    return state


def _diff(have: dict[str, Any], wanted: dict[str, Any]) -> str:
    out = []
    for key in sorted(set(have) | set(wanted)):
        a, b = have.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}: file {a.get(k)!r} vs now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key}: file {a!r} vs now {b!r}")
    return "; ".join(out[:4]) or "unknown difference"


def _append_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ----------------------------------------------------------------------------------- rollout
@dataclass
class _Episode:
    goal_index: int
    steps: list[Step]
    terminated: bool
    reward: float
    invalid: int
    final_info: dict[str, Any]


def generate_self_trajectories(
    output: str | os.PathLike,
    config: SelfGenConfig,
    env_config: WebShopConfig | None = None,
    *,
    resume: bool = True,
    overwrite: bool = False,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Roll the checkpoint out and append the kept trajectories to ``output``; see the module
    docstring. ``on_episode(record)`` is called with each episode's attempt record. Returns the
    run's summary (`summarize_attempts` of the whole log, plus this call's counts)."""
    from webshop_trl.agents.policy_agent import PolicyAgent, load_policy
    from webshop_trl.envs import WebShopEnv, WebShopVectorEnv
    from webshop_trl.envs.backend import get_backend
    from webshop_trl.envs.vector import session_info

    config.validate()
    env_config = env_config or WebShopConfig(observation_mode="text_rich")
    output = Path(output)
    log = attempts_path(output)
    started = time.perf_counter()
    model = load_policy(config.checkpoint, config.device)  # a clear error before any file is touched
    settings = {
        **config.signature(),
        "checkpoint": os.path.abspath(config.checkpoint),
        "checkpoint_fingerprint": checkpoint_fingerprint(config.checkpoint),
        "env": _env_metadata(env_config),
    }
    agent = PolicyAgent(
        model=model, query_source=config.query_source, query_model=config.query_model, query_pick=config.query_pick,
        greedy=config.greedy, temperature=config.temperature, seed=config.seed, device=config.device,
        max_candidates=config.max_candidates, batch_size=config.batch_size, data_dir=env_config.data_dir,
        name=f"self-gen-{Path(config.checkpoint).name}",
    )
    backend = get_backend(env_config)  # goals, catalog, search; shared with the envs below
    order = goal_order(config, backend.goals)  # unknown goal indices fail here, before any file is touched
    if overwrite:
        for p in (output, log):
            if p.exists():
                p.unlink()
    elif not resume and ((output.exists() and output.stat().st_size) or (log.exists() and log.stat().st_size)):
        raise ResumeMismatchError(f"{output} exists: resume it or overwrite it")
    state = _read_state(output, log, settings)
    if not log.is_file() or log.stat().st_size == 0:
        _append_json(log, {"kind": "header", "format": ATTEMPTS_FORMAT, "settings": settings})
    remaining = [g for g in order if g not in state.tried]
    if config.max_episodes is not None:
        remaining = remaining[: max(0, config.max_episodes - state.episodes)]
    now = {"tried": 0, "kept": 0}
    stopped = "num_keep reached" if state.kept >= config.num_keep else None
    if stopped is None and remaining:
        n_envs = min(config.num_envs, len(remaining))
        envs = WebShopVectorEnv(n_envs, env_config)
        replay_env = WebShopEnv(env_config, backend=envs.backend)
        obs, infos = envs.reset(seed=config.seed, options={"goal_queue": remaining})
        pos_of = list(range(n_envs))  # queue position of each session's episode
        next_pos = n_envs
        recorded: list[list[Step]] = [[] for _ in range(n_envs)]
        invalid = [0] * n_envs
        pending: dict[int, _Episode] = {}
        commit = 0
        while envs.active.any() and stopped is None:
            active = [i for i in range(n_envs) if envs.active[i]]
            page_infos = [session_info(infos, i) for i in active]
            chosen = agent.act([obs[i] for i in active], page_infos)
            actions: list[str | None] = [None] * n_envs
            for i, a in zip(active, chosen):
                actions[i] = a
            next_obs, rewards, terms, truncs, next_infos = envs.step(actions)
            for i, info, a in zip(active, page_infos, chosen):
                recorded[i].append(Step(obs[i], list(info["available_actions"]), a, float(rewards[i])))
                done = bool(terms[i] or truncs[i])
                step_info = session_info(next_infos["final_info"], i) if done else session_info(next_infos, i)
                invalid[i] += not step_info.get("valid_action", True)
                if not done:
                    continue
                pending[pos_of[i]] = _Episode(int(step_info["goal_index"]), recorded[i], bool(terms[i]),
                                              float(rewards[i]) if terms[i] else 0.0, invalid[i], step_info)
                if int(step_info["goal_index"]) != remaining[pos_of[i]]:
                    raise AssertionError("session/goal bookkeeping out of step with the vector env's queue")
                recorded[i], invalid[i] = [], 0
                if envs.active[i]:
                    pos_of[i], next_pos = next_pos, next_pos + 1
            obs, infos = next_obs, next_infos
            while commit in pending and stopped is None:
                episode = pending.pop(commit)
                commit += 1
                record = _commit(episode, output, log, state, config, settings, envs.backend.goals, replay_env)
                now["tried"] += 1
                now["kept"] += record["kept"]
                if on_episode is not None:
                    on_episode(record)
                if state.kept >= config.num_keep:
                    stopped = "num_keep reached"
    if stopped is None:
        if config.max_episodes is not None and state.episodes >= config.max_episodes:
            stopped = "max_episodes reached"
        else:
            stopped = "goals exhausted"
    summary = summarize_attempts(log)
    summary.update({
        "output": str(output), "attempts_log": str(log), "stopped": stopped, "tried_now": now["tried"],
        "kept_now": now["kept"], "seconds": round(time.perf_counter() - started, 2),
        "num_keep": config.num_keep, "goals_available": len(order),
    })
    return summary


def _commit(ep: _Episode, output: Path, log: Path, state: _State, config: SelfGenConfig,
            settings: dict[str, Any], goals: Any, replay_env: Any) -> dict[str, Any]:
    """Decide on one finished episode, write it if kept, log the attempt."""
    state.episodes += 1
    state.tried.add(ep.goal_index)
    reason = None
    if ep.invalid:
        reason = "invalid_action"
    elif config.require_purchase and not ep.terminated:
        reason = "no_purchase"
    elif ep.reward < config.threshold - _TOLERANCE:
        reason = "below_threshold"
    record: dict[str, Any] = {
        "kind": "episode", "episode": state.episodes, "goal_index": ep.goal_index, "reward": ep.reward,
        "purchased": ep.terminated, "kept": reason is None, "reason": reason, "steps": len(ep.steps),
        "steps_after_pruning": None, "loops_removed": None,
    }
    if reason is None:
        traj = Trajectory(goal=goals[ep.goal_index].to_dict(), steps=ep.steps, final_reward=ep.reward, source=SOURCE)
        loops = removed = refused = 0
        if config.prune:
            pruned = prune_loops(traj, key=config.loop_key, env=replay_env, goal_index=ep.goal_index)
            traj, loops, removed, refused = pruned.trajectory, pruned.loops_removed, pruned.steps_removed, pruned.refused
        state.kept += 1
        search = next((s.action[7:-1] for s in ep.steps if s.action.startswith("search[")), None)
        traj.metadata = {
            "goal_index": ep.goal_index,
            "checkpoint": settings["checkpoint"],
            "checkpoint_fingerprint": settings["checkpoint_fingerprint"],
            "temperature": settings["temperature"],
            "greedy": config.greedy,
            "seed": config.seed,
            "threshold": config.threshold,
            "query_source": config.query_source,
            "query": search,
            "episode": state.episodes,
            "episodes_tried": state.episodes,
            "kept_index": state.kept,
            "steps_before_pruning": len(ep.steps),
            "num_steps": len(traj.steps),
            "loops_removed": loops,
            "steps_removed": removed,
            "cuts_refused": refused,
            "actions_played": [s.action for s in ep.steps],
            "completed": ep.terminated,
            "purchased_asin": ep.final_info.get("purchased_asin"),
            "selected_options": ep.final_info.get("selected_options"),
            "reward_breakdown": ep.final_info.get("reward_breakdown"),
            "env": settings["env"],
            "settings": settings,
        }
        append_trajectory(output, traj)
        record["steps_after_pruning"] = len(traj.steps)
        record["loops_removed"] = loops
    _append_json(log, record)
    return record


# ----------------------------------------------------------------------------------- summary
def summarize_attempts(log: str | os.PathLike) -> dict[str, Any]:
    """Tried, kept, acceptance rate, reasons, and mean lengths before/after pruning (kept episodes)."""
    tried = kept = 0
    reasons: dict[str, int] = {}
    before: list[int] = []
    after: list[int] = []
    loops = 0
    rewards: list[float] = []
    path = Path(log)
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if rec.get("kind") != "episode":
                    continue
                tried += 1
                rewards.append(float(rec["reward"]))
                if rec["kept"]:
                    kept += 1
                    before.append(int(rec["steps"]))
                    after.append(int(rec["steps_after_pruning"]))
                    loops += int(rec.get("loops_removed") or 0)
                else:
                    reasons[rec["reason"]] = reasons.get(rec["reason"], 0) + 1
    return {
        "tried": tried,
        "kept": kept,
        "acceptance_rate": 100.0 * kept / tried if tried else 0.0,
        "rejected": dict(sorted(reasons.items())),
        "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
        "mean_steps_before_pruning": statistics.fmean(before) if before else 0.0,
        "mean_steps_after_pruning": statistics.fmean(after) if after else 0.0,
        "loops_removed": loops,
        "steps_removed": sum(before) - sum(after),
    }


def format_self_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"self-generated trajectories: {summary.get('output', '')}",
        f"  tried {summary['tried']} episodes ({summary.get('tried_now', summary['tried'])} in this run), "
        f"kept {summary['kept']} ({summary.get('kept_now', summary['kept'])} in this run): "
        f"acceptance {summary['acceptance_rate']:.1f} %",
        f"  rejected: {', '.join(f'{k} {v}' for k, v in summary['rejected'].items()) or 'none'}",
        f"  mean reward of tried episodes {summary['mean_reward']:.3f}",
        f"  kept episodes: mean length {summary['mean_steps_before_pruning']:.2f} steps before pruning, "
        f"{summary['mean_steps_after_pruning']:.2f} after ({summary['loops_removed']} loops, {summary['steps_removed']} steps removed)",
    ]
    if "stopped" in summary:
        lines.append(f"  stopped: {summary['stopped']} after {summary.get('seconds', 0):.1f} s")
    return "\n".join(lines)


__all__ = [
    "SOURCE",
    "SelfGenConfig",
    "generate_self_trajectories",
    "summarize_attempts",
    "format_self_summary",
    "attempts_path",
    "goal_order",
    "checkpoint_fingerprint",
    "ResumeMismatchError",
]
