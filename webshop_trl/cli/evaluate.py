"""`webshop-trl evaluate`: run an agent on a goal split and print/save score and success rate.

    webshop-trl evaluate --agent rule --split test
    webshop-trl evaluate --agent policy --checkpoint checkpoints/il --greedy --split test
    webshop-trl evaluate --agent checkpoints/il --temperature 1.0 --agent-seed 3 --query-source human

``--agent`` is ``rule``, ``random``, ``policy`` (with ``--checkpoint PATH``) or a checkpoint
folder itself. A policy runs on ``text_rich`` observations unless ``--observation-mode`` says
otherwise (WebShop's baseline format, which the IL data uses); the baselines on ``text``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from webshop_trl import paths
from webshop_trl.cli.common import add_env_arguments, env_config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate an agent on a goal split")
    p.add_argument("--agent", default="rule", help="rule, random, policy (with --checkpoint), or a policy checkpoint folder")
    p.add_argument("--split", default="test", choices=["test", "eval", "train"])
    p.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split or the product split")
    p.add_argument("--num-envs", type=int, default=8, help="sessions stepped together")
    p.add_argument("--max-goals", type=int, default=None, help="only the first N goals of the split")
    p.add_argument("--output", default=None, help="result JSON (default outputs/eval/<agent>-<split>.json)")
    p.add_argument("--agent-seed", type=int, default=0, help="seed of a sampling agent")
    policy = p.add_argument_group("policy agent (--agent policy)")
    policy.add_argument("--checkpoint", default=None, help="policy checkpoint folder (ActionScorerModel.save_pretrained)")
    mode = policy.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="argmax choices (the default is sampling, as WebShop's test.py)")
    mode.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0)")
    policy.add_argument("--query-source", choices=["instruction", "human", "seq2seq"], default="instruction",
                        help="search query: the instruction (default), a human query from goal_query_map.json, or a seq2seq model")
    policy.add_argument("--query-model", default=None, help="seq2seq query model folder (--query-source seq2seq)")
    policy.add_argument("--query-pick", choices=["first", "sample"], default="first", help="human/seq2seq: the first query/beam or one drawn")
    policy.add_argument("--max-candidates", type=int, default=None, help="WebShop's test-time cap: first 6 + 10 drawn above N clicks (default off)")
    policy.add_argument("--device", default=None, help="torch device of the policy (default cpu)")
    policy.add_argument("--batch-size", type=int, default=None, help="pages per forward pass (default: all pages of a step)")
    add_env_arguments(p)
    p.set_defaults(func=run, observation_mode=None)  # resolved per agent in run()


def _is_policy(args: argparse.Namespace) -> bool:
    return args.agent == "policy" or (args.agent not in ("rule", "random") and os.path.isdir(args.agent))


def make_agent_from_args(args: argparse.Namespace):
    from webshop_trl.agents import make_agent

    if not _is_policy(args):
        if args.checkpoint is not None:
            raise SystemExit(f"webshop-trl evaluate: error: --checkpoint is for --agent policy, not {args.agent!r}")
        return make_agent(args.agent, **({"seed": args.agent_seed} if args.agent == "random" else {}))
    checkpoint = args.checkpoint if args.agent == "policy" else args.agent
    if checkpoint is None:
        raise SystemExit("webshop-trl evaluate: error: --agent policy needs --checkpoint PATH")
    return make_agent(
        "policy", checkpoint=checkpoint, greedy=args.greedy,
        temperature=1.0 if args.temperature is None else args.temperature, seed=args.agent_seed,
        query_source=args.query_source, query_model=args.query_model, query_pick=args.query_pick,
        max_candidates=args.max_candidates, device=args.device, batch_size=args.batch_size, data_dir=args.data_dir,
    )


def run(args: argparse.Namespace) -> int:
    from webshop_trl.evaluation import evaluate_agent

    if args.observation_mode is None:
        args.observation_mode = "text_rich" if _is_policy(args) else "text"
    try:
        agent = make_agent_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"webshop-trl evaluate: error: {exc}")
    result = evaluate_agent(
        agent, env_config_from_args(args), split=args.split, split_mode=args.split_mode,
        num_envs=args.num_envs, max_goals=args.max_goals,
    )
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", agent.name if _is_policy(args) else args.agent)
    default_out = (paths.repo_dir() or Path.cwd()) / "outputs" / "eval" / f"{label}-{args.split}.json"
    out = result.save(args.output or default_out)
    summary = result.summary()
    table = Table(title=f"{agent.name} on {args.split} ({summary['episodes']} goals, {args.goal_kind}, {args.observation_mode})")
    for key in ("score", "success_rate", "mean_r_att", "mean_r_option", "mean_r_price", "mean_r_type", "mean_steps", "invalid_actions", "seconds"):
        value = summary[key]
        table.add_row(key, "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value)))
    console = Console()
    console.print(table)
    console.print(f"saved {out}")
    print(json.dumps({k: summary[k] for k in ("agent", "split", "episodes", "score", "success_rate")}))
    return 0
