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
from webshop_trl.progress import ProgressLines

SELF_DOC = """`webshop-trl demos self`: self-generated demonstrations (Feng & Feng §3.2).

    webshop-trl demos self --checkpoint checkpoints/il --temperature 1.0 --num-keep 100 --output self.jsonl

The policy plays train goals (shuffled with --seed, each once) with sampling; episodes that buy
with reward >= --threshold are kept, their loops removed (a state seen again: the trajectory goes
from its first visit straight to what followed the last visit; each cut is checked by replaying it
in the environment) and appended to --output, until --num-keep are kept or --max-episodes tried.
Every episode tried is logged in <output stem>.attempts.jsonl; running the same command again
resumes (goals already tried are skipped). Prints tried, kept, acceptance rate and the mean length
before/after pruning.
"""

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

    add_demo_env_arguments(p)


def add_demo_env_arguments(p: argparse.ArgumentParser) -> None:
    """The environment options of the demo builders (`env_config_from_args` reads them)."""
    env = p.add_argument_group("environment")
    env.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    env.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="synthetic or human goals")
    env.add_argument("--engine", choices=["lucene", "bm25s"], default="lucene", help="search engine (bm25s needs no Java)")
    env.add_argument("--observation-mode", choices=["text", "text_rich"], default="text_rich", help="observations recorded (default text_rich, as WebShop's IL data)")
    env.add_argument("--step-limit", type=int, default=100, help="steps before an episode is truncated")
    env.add_argument("--env-seed", type=int, default=0, help="the environment's seed (price draws, hence the goals' price clauses)")
    env.add_argument("--no-reward-quirks", action="store_true",
                     help="score options with the corrected comparison (WebShopConfig.faithful_reward_quirks=False) instead of WebShop's")


def add_self_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `demos self` (also used by datasets_build/self_generated.py)."""
    policy = p.add_argument_group("policy")
    policy.add_argument("--checkpoint", required=True, help="policy checkpoint folder (ActionScorerModel.save_pretrained)")
    mode = policy.add_mutually_exclusive_group()
    mode.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    mode.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    policy.add_argument("--seed", type=int, default=0, help="seed of the sampling and the goal shuffle")
    policy.add_argument("--query-source", choices=["instruction", "human", "seq2seq"], default="instruction",
                        help="search query: the instruction (default), a human query from goal_query_map.json, or a seq2seq model")
    policy.add_argument("--query-model", default=None, help="seq2seq query model folder (--query-source seq2seq)")
    policy.add_argument("--query-pick", choices=["first", "sample"], default="first", help="human/seq2seq: first query/beam or one drawn")
    policy.add_argument("--max-candidates", type=int, default=None, help="WebShop's test-time cap: first 6 + 10 drawn above N clicks (default off)")
    policy.add_argument("--num-envs", type=int, default=8, help="sessions stepped together (the output does not depend on it)")
    policy.add_argument("--batch-size", type=int, default=None, help="pages per forward pass (default: all of a step)")
    policy.add_argument("--device", default=None, help="torch device (default cpu)")

    keep = p.add_argument_group("what to keep")
    keep.add_argument("--threshold", type=float, default=1.0, help="keep episodes with reward >= this (default 1.0)")
    keep.add_argument("--num-keep", type=int, default=100, help="stop after this many kept trajectories (default 100)")
    keep.add_argument("--max-episodes", type=int, default=None, help="stop after this many episodes (default: every goal once)")
    keep.add_argument("--keep-unpurchased", action="store_true", help="also keep episodes that never bought (reward 0; needs --threshold <= 0)")
    keep.add_argument("--no-prune", action="store_true", help="keep loops (default: remove looped sub-trajectories)")
    keep.add_argument("--loop-key", choices=["page", "observation"], default="page",
                      help="state equality for loops: the page without visited-product marks (default) or the raw observation")

    goals = p.add_argument_group("goals")
    goals.add_argument("--split", default="train", choices=["test", "eval", "train"], help="goal split (default train)")
    goals.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split (default) or the product split")
    goals.add_argument("--goal-indices", type=int, nargs="+", default=None, help="these goal indices instead of a split")
    goals.add_argument("--no-shuffle", action="store_true", help="try the goals in index order (default: shuffled with --seed)")

    out = p.add_argument_group("output")
    out.add_argument("--output", default=None, help="JSONL file to append to (default outputs/self/self-<checkpoint>-<t|greedy>-seed<S>.jsonl)")
    out.add_argument("--overwrite", action="store_true", help="start the output file (and its attempt log) afresh instead of resuming")
    out.add_argument("--summary-json", default=None, help="also save the summary here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--progress-lines", action="store_true", help="plain progress lines on stderr instead of the bar (for logs)")

    add_demo_env_arguments(p)


def self_config_from_args(args: argparse.Namespace) -> Any:
    from webshop_trl.trajectories.self_generated import SelfGenConfig

    config = SelfGenConfig(
        checkpoint=args.checkpoint, temperature=args.temperature, greedy=args.greedy, seed=args.seed,
        threshold=args.threshold, num_keep=args.num_keep, max_episodes=args.max_episodes, split=args.split,
        split_mode=args.split_mode, goal_indices=args.goal_indices, shuffle=not args.no_shuffle,
        query_source=args.query_source, query_model=args.query_model, query_pick=args.query_pick,
        prune=not args.no_prune, loop_key=args.loop_key, require_purchase=not args.keep_unpurchased,
        max_candidates=args.max_candidates, num_envs=args.num_envs, device=args.device, batch_size=args.batch_size,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise SystemExit(f"webshop-trl demos self: error: {exc}")
    return config


def run_self(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from webshop_trl.trajectories.self_generated import format_self_summary, generate_self_trajectories

    config = self_config_from_args(args)
    mode = "greedy" if config.greedy else f"t{config.temperature:g}"
    out = Path(args.output or (paths.repo_dir() or Path.cwd()) / "outputs" / "self" /
               f"self-{Path(config.checkpoint).name or 'policy'}-{mode}-seed{config.seed}.jsonl")
    bar = Progress(TextColumn("[bold]self-generated[/]"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("tried {task.fields[tried]}"), TimeElapsedColumn(), disable=args.quiet or args.progress_lines)
    task = bar.add_task("kept", total=config.num_keep, tried=0)
    lines = ProgressLines("self-generated, kept", config.num_keep) if args.progress_lines else None
    tried = kept = 0

    def tick(record: dict[str, Any]) -> None:
        nonlocal tried, kept
        tried += 1
        kept += int(record["kept"])
        bar.update(task, advance=int(record["kept"]), tried=tried)
        if lines is not None:
            lines.update(kept, tried=tried)

    with bar:
        summary = generate_self_trajectories(out, config, env_config_from_args(args), overwrite=args.overwrite, on_episode=tick)
    print(format_self_summary(summary))
    if args.summary_json:
        path = Path(args.summary_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        print(f"saved {path}")
    print(json.dumps({k: summary[k] for k in ("tried", "kept", "acceptance_rate", "mean_steps_before_pruning", "mean_steps_after_pruning")}))
    return 0


def _help(cls: Any, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demos", help="generate demonstrations (scripted expert, or self-generated by a policy)")
    sub = p.add_subparsers(dest="demos_command", required=True)
    e = sub.add_parser("expert", help="scripted expert demos: an oracle that knows the goal", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expert_arguments(e)
    e.set_defaults(func=run_expert)
    s = sub.add_parser("self", help="self-generated demos: successful rollouts of a policy checkpoint, loops removed",
                       description=SELF_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_self_arguments(s)
    s.set_defaults(func=run_self)


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
    paths.write_json_atomic(out, report, indent=2, default=str)
    print(f"saved {out}")
    return 0
