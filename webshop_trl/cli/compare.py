"""`webshop-trl compare`: several agents on the same goals, with bootstrap intervals and paired differences.

    webshop-trl compare --agent rule --agent il=policy:outputs/il/minilm --split test
    webshop-trl compare --agent rule \\
        --agent il=policy:outputs/il/seed0,outputs/il/seed1,outputs/il/seed2 \\
        --agent dpo=policy:outputs/dpo/seed0,outputs/dpo/seed1:greedy \\
        --split test --split-mode product --split-mode index --human

Each ``--agent`` is one row, written ``[NAME=]KIND[:CHECKPOINT][:OPTION]...`` as for
``webshop-trl thompson`` (rule, random, policy:CHECKPOINT; options greedy (the default), sample,
t=T, query=instruction|human, cap=N, obs=text|text_rich). Several training seeds of one policy are
ONE agent: its checkpoints separated by commas, with a name, ``NAME=policy:CKPT1,CKPT2,CKPT3``; the
row then shows the per-goal mean over the seeds with its interval, and the spread across seeds
(mean ± std [min, max] of the per-seed figures).

Views, each its own table section: ``--split-mode product`` (the default and the headline: no
product of the split's goals is in another split), ``--split-mode index`` (WebShop's split) and
``--human`` (all human-written goals: distribution shift). ``--max-goals N`` keeps the first N
goals of each view.

Statistics (webshop_trl.evaluation.stats): score = 100 x mean reward, success = % of goals with
reward 1; 95 % percentile bootstrap over goals (--resamples, default 10,000, seeded). For each pair
(A listed before B): B − A on per-goal differences resampled together, its interval, P(better) =
share of resamples with B − A > 0 (ties count as not better), and whether it is settled (the
interval excludes 0).

Every evaluation (agent, seed checkpoint, view) is cached as per-episode JSON in
OUTPUT/evaluations/ (default OUTPUT: outputs/compare/NAME, NAME from --name, default "default"),
keyed by a hash of the spec, the checkpoint files' sizes and mtimes, the view and its goals and the
environment settings, so rerunning with one more agent evaluates only the new one (the key does
not see code: after changing agent or environment code, delete OUTPUT/evaluations). OUTPUT gets
comparison.json (everything) and comparison.md (the tables, also printed).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from webshop_trl import paths
from webshop_trl.cli.common import add_agent_env_arguments

DEFAULT_NAME = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare agents on the same goals (bootstrap intervals, paired differences, seeds pooled)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agent", action="append", default=[], metavar="SPEC",
                   help="an agent: [NAME=]KIND[:CHECKPOINT][:OPTION]...; several seeds: NAME=policy:CKPT1,CKPT2,... (repeat per agent)")
    p.add_argument("--split", default="test", help="goal split of the product/index views: test (default), eval or train")
    p.add_argument("--split-mode", action="append", default=None, metavar="MODE",
                   help="a view: product (default; the headline) or index; repeat for both")
    p.add_argument("--human", action="store_true", help="add the human-written goals as a view (distribution shift)")
    p.add_argument("--max-goals", type=int, default=None, help="only the first N goals of each view")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10,000)")
    p.add_argument("--level", type=float, default=0.95, help="interval mass (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of sampling agents (default 0)")
    p.add_argument("--num-envs", type=int, default=8, help="sessions stepped together per evaluation (default 8)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"output folder outputs/compare/NAME (default {DEFAULT_NAME!r})")
    p.add_argument("--output", default=None, help="output folder (overrides --name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while evaluating")
    add_agent_env_arguments(p, choices=False)  # bad values: one line from CompareConfig
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from webshop_trl.evaluation.compare import CompareConfig

    return CompareConfig(
        split=args.split, split_modes=list(args.split_mode or ["product"]), human=args.human, max_goals=args.max_goals,
        resamples=args.resamples, level=args.level, seed=args.seed, num_envs=args.num_envs, data_dir=args.data_dir,
        engine=args.engine, observation_mode=args.observation_mode, step_limit=args.step_limit, env_seed=args.env_seed,
    ).validate()


def command_line(args: argparse.Namespace, config) -> str:
    """The command that reproduces this comparison (every setting spelled out)."""
    parts = ["webshop-trl", "compare"]
    for spec in args.agent:
        parts += ["--agent", spec]
    parts += ["--split", config.split]
    for mode in config.split_modes:
        parts += ["--split-mode", mode]
    if config.human:
        parts.append("--human")
    if config.max_goals is not None:
        parts += ["--max-goals", str(config.max_goals)]
    parts += ["--resamples", str(config.resamples), "--level", f"{config.level:g}", "--seed", str(config.seed),
              "--num-envs", str(config.num_envs), "--engine", config.engine, "--step-limit", str(config.step_limit),
              "--env-seed", str(config.env_seed)]
    if config.observation_mode:
        parts += ["--observation-mode", config.observation_mode]
    if config.data_dir:
        parts += ["--data-dir", config.data_dir]
    return shlex.join(parts)


def output_folder(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    return (paths.repo_dir() or Path.cwd()) / "outputs" / "compare" / args.name


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from webshop_trl.evaluation.compare import AgentGroup, CompareError, compare_agents, validate_groups

    console = Console(stderr=True)
    if not args.agent:
        raise CompareError("give at least one --agent (e.g. --agent rule --agent random)")
    if not args.name or "/" in args.name or args.name in (".", ".."):
        raise CompareError(f"--name must be a plain folder name, got {args.name!r}")
    config = config_from_args(args)
    groups = [AgentGroup.parse(text) for text in args.agent]
    validate_groups(groups)
    out = output_folder(args)
    comparison = compare_agents(
        groups, config, output_dir=out, progress=not args.no_progress, log=console.print,
        command=command_line(args, config),
    )
    json_path, md_path = comparison.save(out)
    print(comparison.to_markdown())
    counts = comparison.to_dict()["evaluations"]
    console.print(f"{counts['new']} evaluations run, {counts['cached']} reused from {out / 'evaluations'}")
    console.print(f"saved {json_path} and {md_path}")
    return 0
