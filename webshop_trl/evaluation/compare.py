"""Compare agents on the same goals: per-agent intervals, paired differences, training seeds pooled.

    from webshop_trl.evaluation.compare import AgentGroup, CompareConfig, compare_agents

    groups = [AgentGroup.parse("rule"), AgentGroup.parse("il=policy:outputs/il/seed0,outputs/il/seed1")]
    comparison = compare_agents(groups, CompareConfig(split_modes=["product", "index"], human=True),
                                output_dir="outputs/compare/default")
    print(comparison.to_markdown())
    comparison.to_dict()          # what comparison.json holds

Every agent plays every goal of a *view* once (`evaluate_agent`, vector env), so all agents are
compared on the same goals. Views: ``product`` (the split's goals under the product split: no
product of these goals is in any other split; the headline), ``index`` (WebShop's split by goal
index) and ``human`` (all human-written goals of the catalog, ``goal_kind="human"``, whatever the
split: a distribution-shift check; 13 goals in the 1k catalog). ``max_goals`` keeps the first N
goals of each view, for quick looks.

Agents (`AgentGroup.parse`): the `AgentSpec` syntax of `webshop_trl.evaluation.thompson`
(``[NAME=]KIND[:CHECKPOINT][:OPTION]...``; policies greedy by default), plus one extension:
several training seeds of one policy are one agent, their checkpoints separated by commas,
``il=policy:outputs/il/seed0,outputs/il/seed1,outputs/il/seed2[:OPTION]...`` (a name is required).
Such an agent's per-goal value is the mean over its seeds; see `webshop_trl.evaluation.stats`
for the intervals, the paired differences and how the seeds are pooled.

Cache: every (agent, seed checkpoint, view) evaluation is saved as per-episode JSON in
``<output_dir>/evaluations/``, under a hash of everything its result depends on: the spec (not its
name), the checkpoint's files (name, size and mtime of config, weights and tokenizer files), the
view and its goals (indices and texts), the environment settings, the number of parallel envs and
the agent's sampling seed. A rerun with one more agent evaluates only that agent; a retrained
checkpoint is evaluated again. The key does not see code: after changing an agent's or the
environment's code, delete ``evaluations/`` (or use another output folder). A cached file that cannot be read or does not match its key stops
the comparison with a `CompareError` naming it (delete it to evaluate again).

Seeds: a sampling agent's seed is derived from (``seed``, its spec without name and checkpoint,
its seed index); the bootstrap of view v from (``seed``, v). Everything is deterministic given
``seed``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from webshop_trl.errors import WebShopTrlError
from webshop_trl.evaluation import stats
from webshop_trl.evaluation.thompson import AgentSpec, derive_seed
from webshop_trl.paths import write_json_atomic, write_text_atomic

VIEWS = ("product", "index", "human")  # table order; product is the headline
SPLIT_VIEWS = ("product", "index")
SPLITS = ("test", "eval", "train")
ENGINES = ("lucene", "bm25s")
OBSERVATION_MODES = ("text", "text_rich")
METRICS = {
    "score": "100 x mean reward over the goals (points)",
    "success": "% of goals with reward exactly 1 (points)",
}
FEW_GOALS = 30  # below this many goals a view's table says its intervals are rough
CACHE_FORMAT = "webshop-trl/compare-evaluation/v1"
COMPARISON_FORMAT = "webshop-trl/comparison/v1"
CHECKPOINT_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")  # config, weights, tokenizer


class CompareError(WebShopTrlError, ValueError):
    """Bad comparison input (the message names the value) or a cached evaluation that is corrupt."""


# --------------------------------------------------------------------------- configuration
@dataclass
class CompareConfig:
    """Which goals the agents are compared on, the statistics, and the environment."""

    split: str = field(default="test", metadata={"help": "Goal split of the product and index views: test, eval or train."})
    split_modes: list[str] = field(default_factory=lambda: ["product"], metadata={"help": "Views of the split: 'product' (headline) and/or 'index'."})
    human: bool = field(default=False, metadata={"help": "Add the human-written goals (goal_kind 'human', all of them) as a view."})
    max_goals: int | None = field(default=None, metadata={"help": "Only the first N goals of each view (quick looks)."})
    resamples: int = field(default=stats.DEFAULT_RESAMPLES, metadata={"help": "Bootstrap resamples of the goals."})
    level: float = field(default=stats.DEFAULT_LEVEL, metadata={"help": "Mass of the equal-tailed bootstrap intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap and of sampling agents."})
    num_envs: int = field(default=8, metadata={"help": "Sessions stepped together per evaluation (one batched policy call per step)."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder with the WebShop files (default: the fetched data folder)."})
    engine: str = field(default="lucene", metadata={"help": "Search engine: 'lucene' or 'bm25s' (no Java)."})
    observation_mode: str | None = field(default=None, metadata={"help": "'text' or 'text_rich' for every agent; default per agent: text_rich for policies, text for the baselines."})
    step_limit: int = field(default=100, metadata={"help": "Steps before an episode is truncated."})
    env_seed: int = field(default=0, metadata={"help": "The environment's seed (its load-time price draws)."})

    def validate(self) -> "CompareConfig":
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise CompareError(message)

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        need(self.split in SPLITS, f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        need(isinstance(self.split_modes, (list, tuple)), f"split_modes must be a list, got {self.split_modes!r}")
        for mode in self.split_modes:
            need(mode in SPLIT_VIEWS, f"split mode must be one of {', '.join(SPLIT_VIEWS)}, got {mode!r}")
        need(bool(self.split_modes) or self.human, "nothing to compare on: give a split mode (product, index) or human goals")
        need(self.max_goals is None or (is_int(self.max_goals) and self.max_goals >= 1), f"max_goals must be an integer >= 1, got {self.max_goals!r}")
        for name in ("resamples", "num_envs", "step_limit"):
            value = getattr(self, name)
            need(is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        for name in ("seed", "env_seed"):
            value = getattr(self, name)
            need(is_int(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        need(isinstance(self.level, (int, float)) and 0 < self.level < 1, f"level must be in (0, 1), got {self.level!r}")
        need(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        need(self.observation_mode in (None, *OBSERVATION_MODES), f"observation_mode must be text or text_rich, got {self.observation_mode!r}")
        return self

    def views(self) -> list["View"]:
        """The views in table order (product, index, human), each once."""
        wanted = set(self.split_modes) | ({"human"} if self.human else set())
        return [View.named(name, self.split) for name in VIEWS if name in wanted]

    def observation_mode_for(self, spec: AgentSpec) -> str:
        return spec.observation_mode or self.observation_mode or ("text_rich" if spec.kind == "policy" else "text")

    def env_config(self, goal_kind: str, observation_mode: str):
        from webshop_trl.envs.config import WebShopConfig

        return WebShopConfig(
            data_dir=self.data_dir, goal_kind=goal_kind, search_engine=self.engine,  # type: ignore[arg-type]
            observation_mode=observation_mode, step_limit=self.step_limit, seed=self.env_seed,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class View:
    """A set of goals every agent plays: a split under a split mode, or the human goals."""

    name: str
    split: str  # "all" for the human view
    split_mode: str  # "-" for the human view
    goal_kind: str

    @classmethod
    def named(cls, name: str, split: str) -> "View":
        if name == "human":
            return cls("human", "all", "-", "human")
        return cls(name, split, name, "synthetic")

    def title(self) -> str:
        if self.name == "product":
            return f"{self.split} goals, product split (no product of these goals in another split)"
        if self.name == "index":
            return f"{self.split} goals, index split (WebShop's: a product can also be in train)"
        return "human-written goals (distribution shift)"

    def goal_indices(self, config: CompareConfig) -> list[int]:
        return [g.index for g in self.goals(config)]

    def goals(self, config: CompareConfig) -> list:
        from webshop_trl.envs.backend import get_backend

        goal_set = get_backend(config.env_config(self.goal_kind, "text")).goals
        indices = list(range(len(goal_set))) if self.name == "human" else goal_set.split(self.split, self.split_mode)
        if config.max_goals is not None:
            indices = indices[: config.max_goals]
        if not indices:
            raise CompareError(f"the {self.name} view has no goals (split {self.split!r})")
        return [goal_set[i] for i in indices]


# --------------------------------------------------------------------------- agents
@dataclass
class AgentGroup:
    """One row of the comparison: an agent, possibly several training seeds of it (one spec each)."""

    name: str
    seeds: list[AgentSpec]
    text: str | None = None  # as the user wrote it

    @classmethod
    def parse(cls, text: str) -> "AgentGroup":
        """``[NAME=]KIND[:CHECKPOINT][:OPTION]...`` (`AgentSpec.parse`), or for several training
        seeds ``NAME=policy:CKPT1,CKPT2,...[:OPTION]...`` (one spec per checkpoint, same options)."""
        parts = text.strip().split(":")
        if len(parts) < 2 or "," not in parts[1]:
            spec = AgentSpec.parse(text)
            return cls(spec.name, [spec], text)
        head = parts[0]
        name, eq, kind = head.partition("=")
        if not eq:
            name, kind = "", head
        if kind.strip() != "policy":
            raise CompareError(f"agent spec {text!r}: only policies take several checkpoints (NAME=policy:CKPT1,CKPT2)")
        if not name.strip():
            raise CompareError(f"agent spec {text!r}: an agent with several checkpoints needs a name (NAME=policy:CKPT1,CKPT2)")
        checkpoints = [c.strip() for c in parts[1].split(",")]
        if not all(checkpoints):
            raise CompareError(f"agent spec {text!r} has an empty checkpoint between commas")
        if len(set(checkpoints)) != len(checkpoints):
            raise CompareError(f"agent spec {text!r} names a checkpoint twice")
        specs = [AgentSpec.parse(":".join([head, checkpoint, *parts[2:]])) for checkpoint in checkpoints]
        return cls(name.strip(), specs, text)

    def validate(self) -> "AgentGroup":
        if not self.seeds:
            raise CompareError(f"agent {self.name!r} has no specs")
        for spec in self.seeds:
            spec.validate()
            if spec.kind == "policy":
                checkpoint_fingerprint(spec.checkpoint or "")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "seeds": [s.to_dict() for s in self.seeds]}


def validate_groups(groups: Sequence[AgentGroup]) -> None:
    if not groups:
        raise CompareError("give at least one agent to compare (e.g. --agent rule --agent random)")
    seen: set[str] = set()
    for group in groups:
        if not isinstance(group, AgentGroup):
            raise CompareError(f"agents must be AgentGroup objects, got {type(group).__name__}: {group!r}")
        group.validate()
        if group.name in seen:
            raise CompareError(
                f"duplicate agent name {group.name!r}: give each agent its own name; several training seeds of one "
                "agent go in one spec, checkpoints separated by commas (NAME=policy:CKPT1,CKPT2)"
            )
        seen.add(group.name)


def checkpoint_fingerprint(checkpoint: str) -> list[list]:
    """(name, size, mtime_ns) of the checkpoint folder's config, weight and tokenizer files: what
    says whether a cached evaluation still belongs to the checkpoint (a retrained or replaced
    checkpoint changes it; hashing the weights would cost a read of every file on every run)."""
    folder = Path(os.path.expanduser(checkpoint))
    if not (folder / "config.json").is_file():
        raise CompareError(f"policy checkpoint folder {checkpoint!r} has no config.json: is it a checkpoint?")
    out = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in CHECKPOINT_FILE_SUFFIXES and path.name != "README.md":
            st = path.stat()
            out.append([path.name, st.st_size, st.st_mtime_ns])
    return out


def agent_seed(spec: AgentSpec, seed: int, seed_index: int) -> int:
    """A sampling agent's seed: from the comparison seed, what the spec does (not its name or
    checkpoint path, so renaming an agent keeps its cached results) and its seed index."""
    what = {k: v for k, v in spec.to_dict().items() if k not in ("name", "checkpoint")}
    return derive_seed(seed, "compare", json.dumps(what, sort_keys=True), seed_index)


# --------------------------------------------------------------------------- evaluations and their cache
@dataclass
class SeedRun:
    """One evaluation: one spec (a training seed of an agent) on every goal of one view."""

    agent: str
    seed_index: int
    spec: AgentSpec
    view: str
    goals: list[int]
    rewards: np.ndarray  # per goal, in [0, 1], in the order of ``goals``
    successes: np.ndarray  # per goal, 0 or 1
    cache_file: str
    cached: bool
    seconds: float

    def values(self, metric: str) -> np.ndarray:
        """Per-goal values of ``metric`` in points (score: 100 x reward, success: 100 or 0)."""
        return 100.0 * (self.rewards if metric == "score" else self.successes)


def goals_digest(goals: Sequence[Any]) -> str:
    text = json.dumps([[g.index, g.asin, g.instruction_text] for g in goals])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(spec: AgentSpec, seed_index: int, view: View, goals: Sequence[Any], config: CompareConfig) -> dict[str, Any]:
    """Everything an evaluation's result depends on (see the module docstring)."""
    return {
        "format": CACHE_FORMAT,
        "spec": {k: v for k, v in spec.to_dict().items() if k not in ("name", "checkpoint")},
        "checkpoint_files": checkpoint_fingerprint(spec.checkpoint) if spec.kind == "policy" and spec.checkpoint else None,
        "observation_mode": config.observation_mode_for(spec),
        "view": {"name": view.name, "split": view.split, "split_mode": view.split_mode, "goal_kind": view.goal_kind},
        "goals_sha256": goals_digest(goals),
        "num_goals": len(goals),
        "env": {"engine": config.engine, "step_limit": config.step_limit, "env_seed": config.env_seed},
        "num_envs": config.num_envs,
        "agent_seed": agent_seed(spec, config.seed, seed_index),
    }


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "agent"


def load_cached(folder: Path, digest: str, goals: Sequence[int]) -> tuple[Path, dict[str, Any]] | None:
    """The cached evaluation with this key hash, checked, or None when there is none."""
    matches = sorted(folder.glob(f"*__{digest}.json")) if folder.is_dir() else []
    if not matches:
        return None
    path = matches[0]

    def corrupt(why: str) -> CompareError:
        return CompareError(f"cached evaluation {path} is corrupt ({why}); delete it to evaluate again")

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("key_hash") != digest:
        raise corrupt("not a compare evaluation with this key")
    episodes = data.get("episodes")
    try:
        found = sorted(int(e["goal_index"]) for e in episodes)
        for e in episodes:
            if not 0.0 <= float(e["reward"]) <= 1.0 or not isinstance(e["success"], bool):
                raise ValueError(f"episode {e!r}")
    except (TypeError, KeyError, ValueError) as exc:
        raise corrupt(f"bad episode records: {exc}") from None
    if found != sorted(goals):
        raise corrupt(f"its episodes cover {len(found)} goals, not the view's {len(goals)}")
    return path, data


def evaluate_seed(
    group: AgentGroup, seed_index: int, view: View, goals: Sequence[Any], config: CompareConfig,
    cache_dir: Path, progress: bool = False,
) -> SeedRun:
    """Seed ``seed_index`` of ``group`` on ``view``: from the cache when there, else evaluated and cached."""
    from webshop_trl.evaluation.evaluate import evaluate_agent
    from webshop_trl.evaluation.thompson import agent_from_spec

    spec = group.seeds[seed_index]
    indices = [g.index for g in goals]
    key = cache_key(spec, seed_index, view, goals, config)
    digest = key_hash(key)
    hit = load_cached(cache_dir, digest, indices)
    if hit is not None:
        path, data = hit
        episodes, cached, seconds = data["episodes"], True, float(data.get("seconds", 0.0))
    else:
        agent = agent_from_spec(spec, key["agent_seed"], config.data_dir)
        result = evaluate_agent(
            agent, config.env_config(view.goal_kind, key["observation_mode"]), split=view.split, split_mode=view.split_mode,
            num_envs=min(config.num_envs, len(indices)), goal_indices=indices, progress=progress,
        )
        episodes = [dataclasses.asdict(e) for e in result.episodes]
        seconds, cached = result.seconds, False
        path = cache_dir / f"{view.name}__{_slug(group.name)}__seed{seed_index}__{digest}.json"
        write_json_atomic(path, {
            "format": CACHE_FORMAT, "key_hash": digest, "key": key, "agent": group.name, "seed_index": seed_index,
            "spec": spec.to_dict(), "view": view.name, "seconds": round(seconds, 3), "summary": result.summary(),
            "episodes": episodes,
        })
    by_goal = {int(e["goal_index"]): e for e in episodes}
    return SeedRun(
        agent=group.name, seed_index=seed_index, spec=spec, view=view.name, goals=indices,
        rewards=np.array([float(by_goal[i]["reward"]) for i in indices]),
        successes=np.array([1.0 if by_goal[i]["success"] else 0.0 for i in indices]),
        cache_file=str(path), cached=cached, seconds=seconds,
    )


# --------------------------------------------------------------------------- the comparison
class Comparison:
    """Every evaluation of a comparison and the statistics over them (`to_dict`, `to_markdown`).

    ``runs[view][agent]`` is the list of `SeedRun` of that agent (one per training seed) on the
    view's goals ``goals[view]``. Statistics are computed once, on first use.
    """

    def __init__(self, config: CompareConfig, groups: Sequence[AgentGroup], goals: dict[str, list[int]],
                 runs: dict[str, dict[str, list[SeedRun]]], command: str | None = None, seconds: float = 0.0):
        self.config = config
        self.groups = list(groups)
        self.views = [v for v in config.views() if v.name in runs]
        self.goals = goals
        self.runs = runs
        self.command = command
        self.seconds = float(seconds)
        self._views_stats: dict[str, dict[str, Any]] | None = None

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def view_stats(self) -> dict[str, dict[str, Any]]:
        """Per view: ``rows`` (per agent: score and success with interval and the spread across
        seeds) and ``pairs`` (B - A for every pair in agent order, A listed first)."""
        if self._views_stats is not None:
            return self._views_stats
        cfg = self.config
        out: dict[str, dict[str, Any]] = {}
        for view in self.views:
            runs = self.runs[view.name]
            pooled = {m: [stats.pool_seeds([r.values(m) for r in runs[n]]) for n in self.names] for m in METRICS}
            rows_matrix = np.vstack([pooled[m][j] for m in METRICS for j in range(len(self.names))])
            samples = stats.bootstrap_means(rows_matrix, cfg.resamples, [cfg.seed, derive_seed("bootstrap", view.name)])
            k = len(self.names)
            column = {(m, j): i * k + j for i, m in enumerate(METRICS) for j in range(k)}
            rows: dict[str, Any] = {}
            for j, name in enumerate(self.names):
                row: dict[str, Any] = {"num_seeds": len(runs[name]), "evaluations": [
                    {"seed_index": r.seed_index, "spec": r.spec.describe(), "checkpoint": r.spec.checkpoint,
                     "cache_file": r.cache_file, "cached": r.cached, "seconds": round(r.seconds, 3),
                     "score": float(r.values("score").mean()), "success": float(r.values("success").mean())}
                    for r in runs[name]
                ]}
                for m in METRICS:
                    est = stats.estimate(pooled[m][j], samples[:, column[m, j]], cfg.level)
                    row[m] = {**est.to_dict(), "seeds": stats.seed_spread([r.values(m).mean() for r in runs[name]])}
                rows[name] = row
            pairs = []
            for ia in range(k):
                for ib in range(ia + 1, k):
                    a, b = self.names[ia], self.names[ib]
                    pair: dict[str, Any] = {"a": a, "b": b}
                    for m in METRICS:
                        d = stats.difference(pooled[m][ia], pooled[m][ib], samples[:, column[m, ia]], samples[:, column[m, ib]], cfg.level)
                        pair[m] = {**d.to_dict(), "verdict": d.verdict(a, b)}
                    pairs.append(pair)
            out[view.name] = {"rows": rows, "pairs": pairs}
        self._views_stats = out
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything: settings, agents, goals, per-view rows and pairs (what comparison.json holds)."""
        cfg = self.config
        vs = self.view_stats()
        evaluations = [r for per_view in self.runs.values() for per_agent in per_view.values() for r in per_agent]
        return {
            "format": COMPARISON_FORMAT,
            "command": self.command,
            "metrics": dict(METRICS),
            "method": {
                "interval": f"{100 * cfg.level:g}% equal-tailed percentile bootstrap over goals",
                "level": cfg.level, "resamples": cfg.resamples, "seed": cfg.seed,
                "pairs": "B - A on per-goal differences (all agents resampled on the same goals); A is the agent listed first",
                "p_better": f"share of resamples with B - A > 0; |B - A| <= {stats.TIE_TOLERANCE:g} is a tie and counts as "
                            "not better (p_tie); p_better + p_tie + p_worse = 1",
                "settled": "the interval of B - A excludes 0",
                "pooled_seeds": "an agent with several training seeds: per-goal mean over its seeds, goals resampled "
                                "(the interval holds goal noise, not seed noise); 'seeds' gives the per-seed estimates' spread",
            },
            "config": cfg.to_dict(),
            "agents": [{**g.to_dict(), "specs": [s.describe() for s in g.seeds]} for g in self.groups],
            "views": [
                {
                    "name": v.name, "title": v.title(), "split": v.split, "split_mode": v.split_mode, "goal_kind": v.goal_kind,
                    "headline": v == self.views[0], "num_goals": len(self.goals[v.name]), "goals": self.goals[v.name],
                    **vs[v.name],
                }
                for v in self.views
            ],
            "evaluations": {"new": sum(not r.cached for r in evaluations), "cached": sum(r.cached for r in evaluations)},
            "seconds": round(self.seconds, 3),
        }

    def to_markdown(self) -> str:
        """A section per view: agents (score, success, intervals, spread across seeds) and pairs."""
        cfg = self.config
        level = f"{100 * cfg.level:g} %"
        vs = self.view_stats()
        lines = [
            "# Agent comparison", "",
            f"Score = 100 x mean reward; success = % of goals with reward exactly 1. Every agent plays the same goals once. "
            f"[{level} CI]: percentile bootstrap over goals ({cfg.resamples:,} resamples, seed {cfg.seed}). "
            "An agent with several training seeds: per-goal mean over the seeds, goals resampled (goal noise only); "
            "'across seeds' is the per-seed figures' mean ± std [min, max]. A bootstrap sees only the goals played: "
            "with few goals its intervals are too narrow, and 0 successes gives [0.0, 0.0].", "",
        ]
        for view in self.views:
            s = vs[view.name]
            headline = " (headline)" if view == self.views[0] and len(self.views) > 1 else ""
            lines += [f"## {view.title()}: {len(self.goals[view.name])} goals{headline}", ""]
            if len(self.goals[view.name]) < FEW_GOALS:
                lines += [f"Only {len(self.goals[view.name])} goals: read these intervals as rough.", ""]
            lines += [
                f"| agent | seeds | score [{level} CI] | success % [{level} CI] | score across seeds | success % across seeds |",
                "|---|---|---|---|---|---|",
            ]
            for name in self.names:
                row = s["rows"][name]
                cells = [f"{row[m]['value']:.1f} [{row[m]['ci'][0]:.1f}, {row[m]['ci'][1]:.1f}]" for m in METRICS]
                spreads = [_spread_cell(row[m]["seeds"]) if row["num_seeds"] > 1 else "-" for m in METRICS]
                lines.append(f"| {name} | {row['num_seeds']} | {cells[0]} | {cells[1]} | {spreads[0]} | {spreads[1]} |")
            if s["pairs"]:
                lines += [
                    "", f"Paired differences B − A in points, on the same goals, with the {level} bootstrap interval; "
                    "P(better) = share of resamples with B − A > 0 (ties count as not better); "
                    "settled = the interval excludes 0.", "",
                    "| B − A | Δ score [CI] | P(better) | score verdict | Δ success [CI] | P(better) | success verdict |",
                    "|---|---|---|---|---|---|---|",
                ]
                for p in s["pairs"]:
                    cells = []
                    for m in METRICS:
                        d = p[m]
                        tie = f" (tie {d['p_tie']:.2f})" if d["p_tie"] >= 0.005 else ""
                        cells += [f"{d['value']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]", f"{d['p_better']:.3f}{tie}", d["verdict"]]
                    lines.append(f"| {p['b']} − {p['a']} | " + " | ".join(cells) + " |")
                lines += ["", _settled_sentence(s["pairs"], level)]
            lines.append("")
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``comparison.json`` and ``comparison.md`` into ``folder`` (atomically)."""
        folder = Path(folder)
        return (write_json_atomic(folder / "comparison.json", self.to_dict()),
                write_text_atomic(folder / "comparison.md", self.to_markdown()))


def _spread_cell(spread: dict[str, Any]) -> str:
    return f"{spread['mean']:.1f} ± {spread['std']:.1f} [{spread['min']:.1f}, {spread['max']:.1f}]"


def _settled_sentence(pairs: Sequence[dict[str, Any]], level: str) -> str:
    settled = [f"{p['b']} − {p['a']} on {m} ({p[m]['value']:+.1f})" for p in pairs for m in METRICS if p[m]["settled"]]
    if not settled:
        return f"No difference between agents is settled at {level}: every interval contains 0."
    return f"Settled at {level} (interval excludes 0): " + "; ".join(settled) + ". Every other difference is not settled."


def compare_agents(
    groups: Sequence[AgentGroup | str],
    config: CompareConfig | None = None,
    output_dir: str | os.PathLike = "outputs/compare/default",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> Comparison:
    """Evaluate (or reuse from ``output_dir``/evaluations) every agent, every seed, every view,
    and return the `Comparison`. ``groups`` may be spec strings (`AgentGroup.parse`). ``log`` gets
    one line per evaluation (reused or run); ``progress`` shows `evaluate_agent`'s bar."""
    config = dataclasses.replace(config or CompareConfig()).validate()
    groups = [AgentGroup.parse(g) if isinstance(g, str) else g for g in groups]
    validate_groups(groups)
    cache_dir = Path(output_dir) / "evaluations"
    start = time.perf_counter()
    goals: dict[str, list[int]] = {}
    runs: dict[str, dict[str, list[SeedRun]]] = {}
    for view in config.views():
        view_goals = view.goals(config)
        goals[view.name] = [g.index for g in view_goals]
        runs[view.name] = {}
        for group in groups:
            runs[view.name][group.name] = []
            for i in range(len(group.seeds)):
                run = evaluate_seed(group, i, view, view_goals, config, cache_dir, progress=progress)
                runs[view.name][group.name].append(run)
                if log is not None:
                    how = "reused" if run.cached else f"evaluated in {run.seconds:.0f} s"
                    seed = f" seed {i + 1}/{len(group.seeds)}" if len(group.seeds) > 1 else ""
                    log(f"{group.name}{seed} on {view.name} ({len(view_goals)} goals): {how}, "
                        f"score {run.values('score').mean():.1f}, success {run.values('success').mean():.1f} %")
    return Comparison(config, groups, goals, runs, command=command, seconds=time.perf_counter() - start)


__all__ = [
    "AgentGroup", "CompareConfig", "CompareError", "Comparison", "SeedRun", "View", "compare_agents",
    "cache_key", "checkpoint_fingerprint", "validate_groups", "METRICS", "VIEWS",
]
