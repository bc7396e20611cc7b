"""`webshop-trl demos expert`: scripted expert demonstrations (an oracle that knows the goal).

    webshop-trl demos expert --split train --num-goals 1000 --noise on --output demos.jsonl --seed 0
    webshop-trl demos expert --split train --report          # success figures, noise off and on

Demos are appended one episode per line (flushed and fsynced), so an interrupted run keeps what
it wrote. Running the same command again resumes: goals already in the file are skipped, as long
as the file was made with the same expert and environment settings (else it stops and says
which setting differs; ``--overwrite`` starts afresh). A cut-off last line is dropped first.

``--seed`` seeds the expert's noise; ``--env-seed`` is the environment's seed (its price draws,
which decide the goals' price clauses). ``--report`` runs the expert with noise off and on over
the same goals, prints reward-1 counts and failure classes, and saves them as JSON; it writes no
demos.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from webshop_trl import paths

_SPECIAL = {"seed", "queries", "fallback_queries", "prefer_target"}


def _field_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_expert_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `demos expert` (also used by datasets_build/expert_demos.py)."""
    from webshop_trl.experts import ExpertConfig
    from webshop_trl.experts.config import DEFAULT_NOISE, NOISE_FIELDS

    goals = p.add_argument_group("goals")
    goals.add_argument("--split", default="train", choices=["test", "eval", "train"], help="goal split (default train)")
    goals.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split (default) or the product split")
    goals.add_argument("--num-goals", type=int, default=None, help="only the first N goals of the split (default: all)")
    goals.add_argument("--goal-indices", type=int, nargs="+", default=None, help="these goal indices instead of a split")

    out = p.add_argument_group("output")
    out.add_argument("--output", default=None, help="JSONL file to append to (default outputs/experts/expert-<split>-noise-<off|on>-seed<S>.jsonl)")
    out.add_argument("--overwrite", action="store_true", help="start the output file afresh instead of resuming it")
    out.add_argument("--report", action="store_true", help="no demos: run noise off and on, print success figures and failure classes")
    out.add_argument("--report-json", default=None, help="where --report saves its figures (default outputs/experts/report-<split>.json)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")

    expert = p.add_argument_group("expert (see webshop_trl.experts.ExpertConfig)")
    expert.add_argument("--seed", type=int, default=0, help="seed of the expert's noise (episode rng = Random(f'{seed}:{goal_index}'))")
    expert.add_argument("--noise", choices=["off", "on"], default="off",
                        help=f"off: the straight path; on: human-like detours with the default probabilities {DEFAULT_NOISE}")
    expert.add_argument("--queries", nargs="+", default=None, help=_help(ExpertConfig, "queries"))
    expert.add_argument("--fallback-queries", nargs="*", default=None, help=_help(ExpertConfig, "fallback_queries"))
    expert.add_argument("--no-prefer-target", dest="prefer_target", action="store_false", default=None, help="buy the best-ranked best product, not the goal's own")
    for f in dataclasses.fields(ExpertConfig):
        if f.name in _SPECIAL:
            continue
        kind = float if f.name in NOISE_FIELDS else type(f.default)
        extra = " (overrides --noise)" if f.name in NOISE_FIELDS else ""
        expert.add_argument(_field_flag(f.name), dest=f.name, type=kind, default=None, help=f.metadata.get("help", "") + extra)

    env = p.add_argument_group("environment")
    env.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    env.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="synthetic or human goals")
    env.add_argument("--engine", choices=["lucene", "bm25s"], default="lucene", help="search engine (bm25s needs no Java)")
    env.add_argument("--observation-mode", choices=["text", "text_rich"], default="text_rich", help="observations recorded (default text_rich, as WebShop's IL data)")
    env.add_argument("--step-limit", type=int, default=100, help="steps before an episode is truncated")
    env.add_argument("--env-seed", type=int, default=0, help="the environment's seed (price draws, hence the goals' price clauses)")
    env.add_argument("--no-reward-quirks", action="store_true",
                     help="score options with the corrected comparison (WebShopConfig.faithful_reward_quirks=False) instead of WebShop's")


def _help(cls: Any, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demos", help="generate demonstrations (scripted expert)")
    sub = p.add_subparsers(dest="demos_command", required=True)
    e = sub.add_parser("expert", help="scripted expert demos: an oracle that knows the goal", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expert_arguments(e)
    e.set_defaults(func=run_expert)


def expert_config_from_args(args: argparse.Namespace, noise: str | None = None) -> Any:
    from webshop_trl.experts import ExpertConfig
    from webshop_trl.experts.config import NOISE_FIELDS

    config = ExpertConfig(seed=args.seed)
    config = config.noisy() if (noise or args.noise) == "on" else config
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(ExpertConfig):
        value = getattr(args, f.name, None)
        if f.name == "seed" or value is None:
            continue
        if f.name in NOISE_FIELDS and noise == "off":
            continue  # --report's noise-off run stays noiseless
        overrides[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        return dataclasses.replace(config, **overrides)
    except ValueError as exc:
        raise SystemExit(f"webshop-trl demos expert: error: {exc}")


def env_config_from_args(args: argparse.Namespace) -> Any:
    from webshop_trl.envs.config import WebShopConfig

    return WebShopConfig(
        data_dir=args.data_dir, goal_kind=args.goal_kind, search_engine=args.engine,
        observation_mode=args.observation_mode, step_limit=args.step_limit, seed=args.env_seed,
        faithful_reward_quirks=not args.no_reward_quirks,
    )


def _goal_indices(args: argparse.Namespace, env: Any) -> list[int]:
    if args.goal_indices is not None:
        return list(args.goal_indices)
    indices = env.goals.split(args.split, args.split_mode)
    if args.num_goals is not None:
        if args.num_goals < 0:
            raise SystemExit("webshop-trl demos expert: error: --num-goals must be >= 0")
        indices = indices[: args.num_goals]
    return indices


def _progress(total: int, label: str, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("reward 1: {task.fields[ok]}"), TimeElapsedColumn(), disable=quiet)
    return bar, bar.add_task(label, total=total, ok=0)


def run_expert(args: argparse.Namespace) -> int:
    from webshop_trl.envs import WebShopEnv

    env = WebShopEnv(env_config_from_args(args))
    indices = _goal_indices(args, env)
    for i in indices:  # a clear error before anything runs
        env.goals[i]
    if args.report:
        return _run_report(args, env, indices)
    return _run_write(args, env, indices)


def _run_write(args: argparse.Namespace, env: Any, indices: list[int]) -> int:
    from webshop_trl.experts import format_summary, summarize, write_expert_demos
    from webshop_trl.trajectories import read_trajectories

    config = expert_config_from_args(args)
    noise = "on" if config.has_noise else "off"
    out = Path(args.output or (paths.repo_dir() or Path.cwd()) / "outputs" / "experts" / f"expert-{args.split}-noise-{noise}-seed{config.seed}.jsonl")
    bar, task = _progress(len(indices), f"expert demos (noise {noise})", args.quiet)
    ok = 0

    def tick(traj: Any) -> None:
        nonlocal ok
        ok += traj.final_reward >= 1.0 - 1e-9
        bar.update(task, advance=1, ok=ok)

    start = time.perf_counter()
    with bar:
        counts = write_expert_demos(out, indices, config, env=env, overwrite=args.overwrite, on_episode=tick)
        bar.update(task, completed=len(indices))
    seconds = time.perf_counter() - start
    wanted = set(indices)
    trajs = [t for t in read_trajectories(out) if t.metadata.get("goal_index") in wanted]
    print(format_summary(f"{out} (goals asked {len(indices)}, written now {counts['written']}, already there {counts['skipped']})", summarize(trajs)))
    print(f"wrote {counts['written']} episodes in {seconds:.1f} s to {out}")
    return 0


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=paths.repo_dir() or Path.cwd()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _run_report(args: argparse.Namespace, env: Any, indices: list[int]) -> int:
    from webshop_trl.experts import ExpertAgent, format_summary, run_expert_episode, summarize

    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "commit": _git_commit(),
        "split": args.split if args.goal_indices is None else None,
        "split_mode": args.split_mode,
        "goals": len(indices),
        "goal_range": [min(indices), max(indices)] if indices else None,
        "env": dataclasses.asdict(env.config),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": {},
    }
    for noise in ("off", "on"):
        config = expert_config_from_args(args, noise)
        agent = ExpertAgent(config, env=env)
        bar, task = _progress(len(indices), f"expert (noise {noise})", args.quiet)
        trajs, ok = [], 0
        start = time.perf_counter()
        with bar:
            for i in indices:
                t = run_expert_episode(env, agent, i)
                t.steps = []  # keep only the figures in memory
                trajs.append(t)
                ok += t.final_reward >= 1.0 - 1e-9
                bar.update(task, advance=1, ok=ok)
        summary = summarize(trajs, time.perf_counter() - start)
        summary["expert"] = config.to_dict()
        report["runs"][f"noise_{noise}"] = summary
        print(format_summary(f"expert, noise {noise}: {len(indices)} goals ({report['split'] or 'given indices'})", summary))
        print()
    out = Path(args.report_json or (paths.repo_dir() or Path.cwd()) / "outputs" / "experts" / f"report-{args.split}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, out)
    print(f"saved {out}")
    return 0
