"""`webshop-trl evaluate`: run an agent on a goal split and print/save score and success rate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from webshop_trl import paths
from webshop_trl.cli.common import add_env_arguments, env_config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate an agent on a goal split")
    p.add_argument("--agent", default="rule", help="rule or random")
    p.add_argument("--split", default="test", choices=["test", "eval", "train"])
    p.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split or the product split")
    p.add_argument("--num-envs", type=int, default=8, help="sessions stepped together")
    p.add_argument("--max-goals", type=int, default=None, help="only the first N goals of the split")
    p.add_argument("--output", default=None, help="result JSON (default outputs/eval/<agent>-<split>.json)")
    p.add_argument("--agent-seed", type=int, default=0, help="seed of a sampling agent")
    add_env_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webshop_trl.agents import make_agent
    from webshop_trl.evaluation import evaluate_agent

    agent = make_agent(args.agent, **({"seed": args.agent_seed} if args.agent == "random" else {}))
    result = evaluate_agent(
        agent, env_config_from_args(args), split=args.split, split_mode=args.split_mode,
        num_envs=args.num_envs, max_goals=args.max_goals,
    )
    default_out = (paths.repo_dir() or Path.cwd()) / "outputs" / "eval" / f"{args.agent}-{args.split}.json"
    out = result.save(args.output or default_out)
    summary = result.summary()
    table = Table(title=f"{agent.name} on {args.split} ({summary['episodes']} goals, {args.goal_kind})")
    for key in ("score", "success_rate", "mean_r_att", "mean_r_option", "mean_r_price", "mean_r_type", "mean_steps", "invalid_actions", "seconds"):
        value = summary[key]
        table.add_row(key, "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value)))
    console = Console()
    console.print(table)
    console.print(f"saved {out}")
    print(json.dumps({k: summary[k] for k in ("agent", "split", "episodes", "score", "success_rate")}))
    return 0
