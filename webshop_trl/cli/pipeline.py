"""`webshop-trl pipeline`: the paper's pipeline end to end, at a named budget.

    webshop-trl pipeline                                   # small budget (~1 hour on a 2-core CPU) -> outputs/pipeline
    webshop-trl pipeline --budget paper --output outputs/pipeline-paper --set device=cuda
    webshop-trl pipeline --set dpo_steps=500 --set thompson_rollouts=300   # change single settings
    webshop-trl pipeline --only thompson report            # just these stages (the others must be done)
    webshop-trl pipeline --force dpo-self                  # rerun a stage and everything after it
    webshop-trl pipeline --dry-run                         # what a run would do, stage by stage

Stages, in order (each a subprocess of the project's own commands, its output in
<output>/logs/<stage>.log): demos-il (scripted expert, noise off, the train goals: IL data),
demos-expert (noise on: the stand-in for the paper's 1,200 human trajectories), il (behaviour
cloning, recipes/minilm/il/config_full.yaml), demos-self (the IL policy's own reward-1
trajectories), prefs-expert and prefs-self (preference pairs, the IL policy as reference),
dpo-expert and dpo-self (recipes/minilm/dpo/config_full.yaml), ppo (recipes/minilm/ppo/config_full.yaml),
thompson (rule, IL, DPO a/b, PPO) and report (<output>/report.md and results.json).

A rerun reuses every stage whose marker (<output>/stages/<stage>.json) matches its current
parameters and whose outputs exist; a stage whose parameters changed runs again, and so does
everything downstream of it. A stage interrupted mid-way has no marker and runs again (its partial
outputs are moved to <output>/stale/<stage>/).
"""

from __future__ import annotations

import argparse
import sys

from webshop_trl.pipeline.config import BUDGETS, DEFAULT_BASE_MODEL, field_help


def _settings_epilog() -> str:
    lines = ["budgets:"]
    for b in BUDGETS.values():
        total = f"{b.total_minutes / 60:.0f} h" if b.total_minutes > 180 else f"{b.total_minutes:.0f} min"
        lines.append(f"  {b.name:7s} ~{total} on a 2-core CPU: {b.description}")
    lines += ["", "settings for --set KEY=VALUE (none/null for 'the recipe's value'):"]
    for name, text in field_help().items():
        if name != "budget":
            lines.append(f"  {name}: {text}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    from webshop_trl.pipeline.stages import STAGE_NAMES

    p = subparsers.add_parser(
        "pipeline", help="the paper's pipeline end to end at a budget: demos, IL, DPO x2, PPO, Thompson sampling, report",
        description=__doc__, epilog=_settings_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--budget", choices=list(BUDGETS), default="small", help="named sizes (default small; see below)")
    p.add_argument("--output", default="outputs/pipeline", help="output folder (default outputs/pipeline)")
    p.add_argument("--base-model", default=None,
                   help=f"IL's starting point: a BERT encoder (default {DEFAULT_BASE_MODEL}) or a policy checkpoint folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one setting of the budget (repeatable), e.g. --set dpo_steps=2")
    p.add_argument("--only", nargs="+", choices=STAGE_NAMES, default=None, metavar="STAGE",
                   help=f"run only these stages (their inputs must be done): {', '.join(STAGE_NAMES)}")
    p.add_argument("--force", action="append", choices=STAGE_NAMES, default=[], metavar="STAGE",
                   help="rerun this stage even if it is done, and so everything after it (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what a run would do with each stage; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress display (errors still print)")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of the live table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webshop_trl.pipeline.config import PipelineConfig, apply_overrides
    from webshop_trl.pipeline.runner import PipelineRunner

    config = PipelineConfig.from_budget(args.budget)
    overrides = list(args.overrides)
    if args.base_model:
        overrides.insert(0, f"base_model={args.base_model}")
    config = apply_overrides(config, overrides)
    runner = PipelineRunner(config, args.output, quiet=args.quiet, live=False if args.plain else None)
    if args.dry_run:
        minutes = config.expected_minutes()
        print(f"budget {config.budget}: {BUDGETS[config.budget].description}")
        print(f"output {runner.layout.root}")
        for i, (stage, what) in enumerate(runner.plan(args.only, args.force), 1):
            print(f"  {i:2d}. {stage.name:13s} {what:32s} ~{minutes.get(stage.name, 0):g} min")
        return 0
    runner.run(only=args.only, force=args.force)
    return 0


if __name__ == "__main__":  # python -m webshop_trl.cli.pipeline ...
    from webshop_trl.cli.main import main

    sys.exit(main(["pipeline", *sys.argv[1:]]))
