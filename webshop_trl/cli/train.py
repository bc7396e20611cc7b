"""`webshop-trl train <method>`: run a trainer's entry script from a YAML recipe.

    webshop-trl train il  --config recipes/minilm/il/config_full.yaml [--key value ...]
    webshop-trl train dpo --config recipes/minilm/dpo/config_full.yaml
    webshop-trl train ppo --config recipes/minilm/ppo/config_full.yaml --resume_from_checkpoint true

Everything after the method goes to the script's `TrlParser` (``--config`` plus overrides of any
recipe key; ``--help`` lists them), exactly as ``python -m webshop_trl.scripts.<method>`` would.
This runs in one process; use ``accelerate launch ... -m webshop_trl.scripts.<method>`` for
several (recipes/<model>/README.md has the commands).
"""

from __future__ import annotations

import argparse
import importlib

METHODS = {
    "il": "imitation learning (behaviour cloning) of the choice policy",
    "dpo": "DPO on preference pairs (webshop-trl build-preferences), from the IL checkpoint",
    "ppo": "PPO on the live WebShop environment, from the IL checkpoint",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a policy from a YAML recipe", description=__doc__.splitlines()[0],
        epilog="Run `webshop-trl train <method> --help` for the recipe keys.",
    )
    p.add_argument("method", choices=sorted(METHODS), help="; ".join(f"{k}: {v}" for k, v in METHODS.items()))
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="--config recipe.yaml and overrides (--key value)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"webshop_trl.scripts.{args.method}")
    parser = module.make_parser(prog=f"webshop-trl train {args.method}")
    parsed = parser.parse_args_and_config(args.script_args)
    module.main(*parsed)
    return 0
