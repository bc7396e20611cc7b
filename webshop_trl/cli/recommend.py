"""`webshop-trl recommend`: the shopping agent as a recommender (the paper's §6).

    webshop-trl recommend "i need a red dress under 40 dollars" --checkpoint outputs/il/minilm --runs 10
    webshop-trl recommend --goal-index 12 --split test --runs 20 --json outputs/recommend/goal12.json
    webshop-trl recommend "i want a leather wallet" --agent rule --runs 3

The agent plays the request ``--runs`` times, sampling its choices (``--temperature``, seeded by
``--seed``); the products it bought are printed ranked by how often (ties: higher mean reward,
then the earlier run), with price, share of runs and the options bought most often. A goal
(``--goal-index``, or an instruction equal to a goal's text) gives each product's mean reward;
free text has none. ``--json`` saves the ranking and every run's episode.

The default agent is the policy checkpoint ``outputs/il/minilm`` (``--checkpoint`` for another);
``--agent rule`` (or ``random``) needs no model, for demos and tests.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recommend", help="rank the products the agent buys over several sampled runs of a request",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("instruction", nargs="?", default=None, help="what the user asks for (free text, or a goal's instruction)")
    p.add_argument("--goal-index", type=int, default=None, help="play goal N of the goal set (its reward is known)")
    p.add_argument("--split", default=None, choices=["test", "eval", "train"], help="check --goal-index is in this split; match an instruction against this split's goals only")
    p.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split or the product split")
    p.add_argument("--agent", default="policy", choices=["policy", "rule", "random"], help="policy (a checkpoint, default), or the rule/random baselines")
    p.add_argument("--checkpoint", default=None, help="policy checkpoint folder (default outputs/il/minilm)")
    p.add_argument("--runs", type=int, default=10, help="sampled runs of the agent (default 10)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the policy (0: greedy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled runs")
    p.add_argument("--step-limit", type=int, default=100, help="steps before a run is cut off without a purchase")
    p.add_argument("--max-candidates", type=int, default=None, help="WebShop's test-time cap: first 6 + 10 drawn above N clicks (default off)")
    p.add_argument("--query-source", choices=["instruction", "human", "seq2seq"], default="instruction", help="the policy's search query")
    p.add_argument("--query-model", default=None, help="seq2seq query model folder (--query-source seq2seq)")
    p.add_argument("--num-envs", type=int, default=None, help="runs stepped together (default: all runs, at most 16)")
    p.add_argument("--batch-size", type=int, default=None, help="pages per forward pass (default: all pages of a step)")
    p.add_argument("--device", default=None, help="torch device of the policy (default cpu)")
    p.add_argument("--top", type=int, default=None, help="print only the first N products")
    p.add_argument("--episodes", action="store_true", help="also print each run's actions")
    p.add_argument("--json", default=None, metavar="PATH", help="save the ranking and the episodes as JSON")
    env = p.add_argument_group("environment")
    env.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    env.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="goal set of --goal-index")
    env.add_argument("--engine", choices=["lucene", "bm25s"], default="lucene", help="search engine (bm25s needs no Java)")
    env.add_argument("--observation-mode", choices=["text", "text_rich"], default="text_rich", help="text_rich: what the IL policy was trained on")
    env.add_argument("--env-seed", type=int, default=0, help="seed of the load-time price draws (goal texts)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from webshop_trl.recommend import RecommendError

    if args.runs < 1:
        raise RecommendError(f"--runs must be >= 1, got {args.runs}")
    if args.instruction is not None and not args.instruction.strip():
        raise RecommendError(f"empty instruction {args.instruction!r}: say what to shop for, or give --goal-index")
    if args.instruction is None and args.goal_index is None:
        raise RecommendError("give an instruction (\"i need ...\") or --goal-index N")
    if args.top is not None and args.top < 1:
        raise RecommendError(f"--top must be >= 1, got {args.top}")
    if args.agent != "policy" and args.checkpoint is not None:
        raise RecommendError(f"--checkpoint {args.checkpoint} is for --agent policy, not --agent {args.agent}")


def run(args: argparse.Namespace) -> int:
    from webshop_trl.recommend import RecommendConfig, Recommender

    _check(args)
    config = RecommendConfig(
        num_runs=args.runs, temperature=args.temperature, seed=args.seed, step_limit=args.step_limit,
        max_candidates=args.max_candidates, engine=args.engine, observation_mode=args.observation_mode,
        query_source=args.query_source, query_model=args.query_model, num_envs=args.num_envs,
        batch_size=args.batch_size, device=args.device, data_dir=args.data_dir, goal_kind=args.goal_kind,
        env_seed=args.env_seed,
    )
    recommender = Recommender.from_agent_name(args.agent, config, args.checkpoint)
    # resolve first: a bad request fails before any run
    recommender.resolve(args.instruction, args.goal_index, args.split, args.split_mode)
    result = recommender.recommend(args.instruction, goal_index=args.goal_index, split=args.split, split_mode=args.split_mode)

    console = Console()
    goal = f"goal {result.goal_index} (reward known)" if result.goal_known else "free text (no reward)"
    console.print(f"[bold]request:[/] {result.instruction}")
    console.print(f"{goal}; agent {result.agent}; {result.num_runs} runs, {result.num_runs - result.no_purchase} purchases"
                  + (f", mean reward {result.mean_reward:.3f}" if result.mean_reward is not None else "")
                  + (f"; goal product {result.goal_asin}" if result.goal_asin else ""))
    table = Table(title="recommendations")
    for col, just in (("rank", "right"), ("ASIN", "left"), ("title", "left"), ("price", "left"), ("chosen", "right"),
                      ("share", "right"), ("mean reward", "right"), ("options", "left")):
        table.add_column(col, justify=just, no_wrap=col in ("ASIN", "chosen", "share"), overflow="ellipsis" if col == "title" else "fold")
    for r in result.top(args.top) if args.top else result:
        table.add_row(
            str(r.rank), r.asin, r.title if len(r.title) <= 70 else r.title[:69] + "…", r.price, str(r.times_chosen), f"{100 * r.share:.0f}%",
            "-" if r.mean_reward is None else f"{r.mean_reward:.3f}",
            ", ".join(f"{k}: {v}" for k, v in r.options.items()) or "-",
        )
    console.print(table)
    if args.episodes:
        for e in result.episodes:
            end = f"bought {e.purchased_asin}" if e.purchased else "no purchase"
            reward = "" if e.reward is None else f", reward {e.reward:.3f}"
            console.print(f"run {e.run}: {end}{reward} in {e.steps} steps: " + " > ".join(e.actions), markup=False)
    if args.json:
        out = result.save(args.json)
        console.print(f"saved {out}")
    print(json.dumps({"instruction": result.instruction, "goal_index": result.goal_index, "runs": result.num_runs,
                      "top": result.asins[:3], "no_purchase": result.no_purchase}))
    return 0
