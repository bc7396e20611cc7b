"""`webshop-trl thompson`: Thompson-sampling evaluation over agents, with a table, JSON and plots.

    webshop-trl thompson --agent rule --agent random --agent il=policy:outputs/il/minilm \\
        --runs 4 --rollouts 1000 --output outputs/thompson/il-vs-baselines

Each ``--agent`` is an arm, written ``[NAME=]KIND[:CHECKPOINT][:OPTION]...``:

    rule                               the rule baseline (name "rule")
    random                             the random baseline (seeded per run)
    il=policy:outputs/il/minilm        a policy checkpoint folder, greedy (the default)
    dpo=policy:outputs/dpo:t=0.7       sampling at temperature 0.7 (``sample`` = temperature 1)
    hq=policy:outputs/il/minilm:query=human    search with WebShop's human queries
    options: greedy, sample, t=T, query=instruction|human, cap=N (WebShop's candidate cap),
             obs=text|text_rich (observation mode; default text_rich for policies, text otherwise)

Each round picks ``--per-round`` arms (default 8) from the current posteriors and plays those
episodes together, one batched policy call per step, which is what makes 1000 rollouts of a
policy affordable on a CPU; ``--per-round 1`` is textbook Thompson sampling. Runs are independent
(run i seeded with (--seed, i)) and spread over ``--workers`` processes (0: in this process).
The output folder gets report.json (everything, including the per-round posterior history),
table.md and the PNG plots; ``--plot-only`` redraws the plots and table of an existing report.json.
See `webshop_trl.evaluation.thompson` for the posteriors and what is reported.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from webshop_trl import paths
from webshop_trl.cli.common import add_agent_env_arguments
from webshop_trl.progress import ProgressLines

DEFAULT_PER_ROUND = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "thompson", help="Thompson-sampling evaluation over agents (table, JSON, plots)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agent", action="append", default=[], metavar="SPEC",
                   help="an arm: [NAME=]KIND[:CHECKPOINT][:OPTION]... (repeat for each agent; see above)")
    p.add_argument("--runs", type=int, default=4, help="independent runs (default 4)")
    p.add_argument("--rollouts", type=int, default=1000, help="episodes per run (default 1000, as the paper)")
    p.add_argument("--per-round", type=int, default=DEFAULT_PER_ROUND,
                   help=f"arms picked per round and rolled out together (default {DEFAULT_PER_ROUND}; 1 = textbook Thompson sampling)")
    p.add_argument("--objective", choices=["success", "score"], default="success", help="posterior the arms are picked by (default success)")
    p.add_argument("--split", default="test", choices=["test", "eval", "train"], help="goal split (default test)")
    p.add_argument("--split-mode", default="index", choices=["index", "product"], help="WebShop's index split or the product split")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws, goal draws and sampling agents")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2; 0 = run in this process)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per worker (default 1; 0 = torch's default)")
    p.add_argument("--prior-alpha", type=float, default=1.0, help="Beta prior alpha (default 1)")
    p.add_argument("--prior-beta", type=float, default=1.0, help="Beta prior beta (default 1)")
    p.add_argument("--credible-level", type=float, default=0.95, help="credible interval mass (default 0.95)")
    p.add_argument("--output", default=None, help="output folder (default outputs/thompson/<agents>-<split>)")
    p.add_argument("--no-plots", action="store_true", help="write report.json and table.md only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--progress-lines", action="store_true", help="plain progress lines on stderr instead of the bar (for logs)")
    p.add_argument("--plot-only", action="store_true", help="redraw table.md and the plots from OUTPUT/report.json; run nothing")
    add_agent_env_arguments(p, goal_kind=True)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from webshop_trl.evaluation.thompson import ThompsonConfig

    return ThompsonConfig(
        num_runs=args.runs, rollouts_per_run=args.rollouts, rollouts_per_round=args.per_round,
        objective=args.objective, split=args.split, split_mode=args.split_mode, seed=args.seed,
        num_workers=args.workers, threads_per_worker=args.threads_per_worker,
        prior_alpha=args.prior_alpha, prior_beta=args.prior_beta, credible_level=args.credible_level,
        data_dir=args.data_dir, goal_kind=args.goal_kind, engine=args.engine,
        observation_mode=args.observation_mode, step_limit=args.step_limit, env_seed=args.env_seed,
    ).validate()


def _default_output(names: list[str], split: str) -> Path:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-vs-".join(names))[:120] or "agents"
    return (paths.repo_dir() or Path.cwd()) / "outputs" / "thompson" / f"{label}-{split}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from webshop_trl.evaluation.thompson import AgentSpec, ThompsonError, ThompsonReport, run_thompson, validate_agents

    console = Console()
    if args.plot_only:
        if args.output is None:
            raise ThompsonError("--plot-only needs --output FOLDER (the folder holding report.json)")
        out = Path(args.output)
        report = ThompsonReport.load(out / "report.json")
    else:
        if not args.agent:
            raise ThompsonError("give at least one --agent (e.g. --agent rule --agent random)")
        agents = [AgentSpec.parse(text) for text in args.agent]
        validate_agents(agents)
        config = config_from_args(args)
        out = Path(args.output) if args.output else _default_output([a.name for a in agents], args.split)
        lines = None
        if args.progress_lines:
            lines = ProgressLines(f"thompson {len(agents)} agents x {config.num_runs} runs, rollouts",
                                  config.num_runs * config.rollouts_per_run).update
        report = run_thompson(agents, config, progress=not (args.no_progress or args.progress_lines), on_rollouts=lines)
        console.print(f"saved {report.save(out / 'report.json')}")
    table = report.table_markdown()
    (out / "table.md").write_text(table)
    print(table)
    if not args.no_plots:
        from webshop_trl.evaluation.plots import plot_thompson

        for path in plot_thompson(report, out):
            console.print(f"saved {path}")
    summary = report.summary()
    console.print(f"best by P(best {report.config.objective}): [bold]{summary['best']}[/]  ({report.seconds:.0f} s)")
    return 0
