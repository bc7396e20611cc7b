"""Options shared by the sub-commands that build an environment, and the `main` of the
standalone scripts in datasets_build/."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from webshop_trl.envs.config import WebShopConfig
from webshop_trl.errors import WebShopTrlError


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("environment")
    group.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    group.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="synthetic or human goals")
    group.add_argument("--engine", choices=["lucene", "bm25s"], default="lucene", help="search engine (bm25s needs no Java)")
    group.add_argument("--observation-mode", choices=["text", "text_rich"], default="text")
    group.add_argument("--step-limit", type=int, default=100, help="steps before an episode is truncated")
    group.add_argument("--seed", type=int, default=0, help="seed of the load-time price draws")


def add_agent_env_arguments(parser: argparse.ArgumentParser, *, goal_kind: bool = False, choices: bool = True) -> None:
    """The environment options of the commands that run several agents (thompson, compare): the
    observation mode defaults to each agent's own (text_rich for policies, text for baselines) and
    the seed is ``--env-seed`` (``--seed`` seeds the agents there). ``choices=False`` leaves value
    checks to the command's config, which reports a bad value in one line."""
    group = parser.add_argument_group("environment")
    group.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    if goal_kind:
        group.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="synthetic or human goals")
    group.add_argument("--engine", default="lucene", choices=["lucene", "bm25s"] if choices else None,
                       help="search engine: lucene (default) or bm25s (no Java)")
    group.add_argument("--observation-mode", default=None, choices=["text", "text_rich"] if choices else None,
                       help="text or text_rich for every agent (default: text_rich for policies, text for the baselines)")
    group.add_argument("--step-limit", type=int, default=100, help="steps before an episode is truncated")
    group.add_argument("--env-seed", type=int, default=0, help="the environment's seed (load-time price draws)")


def env_config_from_args(args: argparse.Namespace) -> WebShopConfig:
    return WebShopConfig(
        data_dir=args.data_dir,
        goal_kind=args.goal_kind,
        search_engine=args.engine,
        observation_mode=args.observation_mode,
        step_limit=args.step_limit,
        seed=args.seed,
    )


def run_standalone(
    name: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
    interrupted: str,
) -> int:
    """A datasets_build/ script's `main`: parse ``argv`` (description: the script's docstring), run,
    and turn a `WebShopTrlError` into "<name>: error: ..." with exit 2 and Ctrl-C into
    "<name>: interrupted (<interrupted>)" with exit 130."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except WebShopTrlError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted ({interrupted})", file=sys.stderr)
        return 130
