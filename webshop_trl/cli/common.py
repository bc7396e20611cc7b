"""Options shared by the sub-commands that build an environment."""

from __future__ import annotations

import argparse

from webshop_trl.envs.config import WebShopConfig


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("environment")
    group.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    group.add_argument("--goal-kind", choices=["synthetic", "human"], default="synthetic", help="synthetic or human goals")
    group.add_argument("--engine", choices=["lucene", "bm25s"], default="lucene", help="search engine (bm25s needs no Java)")
    group.add_argument("--observation-mode", choices=["text", "text_rich"], default="text")
    group.add_argument("--step-limit", type=int, default=100, help="steps before an episode is truncated")
    group.add_argument("--seed", type=int, default=0, help="seed of the load-time price draws")


def env_config_from_args(args: argparse.Namespace) -> WebShopConfig:
    return WebShopConfig(
        data_dir=args.data_dir,
        goal_kind=args.goal_kind,
        search_engine=args.engine,
        observation_mode=args.observation_mode,
        step_limit=args.step_limit,
        seed=args.seed,
    )
