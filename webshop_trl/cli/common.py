"""Options shared by the sub-commands that build an environment, and the `main` of the
standalone scripts in datasets_build/."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Sequence, TextIO

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


def env_config_from_args(args: argparse.Namespace) -> WebShopConfig:
    return WebShopConfig(
        data_dir=args.data_dir,
        goal_kind=args.goal_kind,
        search_engine=args.engine,
        observation_mode=args.observation_mode,
        step_limit=args.step_limit,
        seed=args.seed,
    )


class ProgressLines:
    """Progress as plain lines on stderr, for logs: a rich bar writes nothing useful into a file.

    One line at most every ``every`` seconds, and one when ``done`` reaches ``total``. The pipeline's
    live view shows each running stage's last log line, so these lines are what keeps a long stage
    (self-generation, Thompson sampling) from looking stalled."""

    def __init__(self, label: str, total: int, every: float = 15.0, stream: TextIO | None = None):
        self.label, self.total, self.every = label, total, every
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self._last: float | None = None

    def update(self, done: int, **fields: object) -> None:
        now = time.monotonic()
        if done < self.total and self._last is not None and now - self._last < self.every:
            return
        self._last = now
        elapsed = int(now - self.start)
        extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in fields.items())
        print(f"{self.label}: {done}/{self.total}{extra}, {elapsed // 60}:{elapsed % 60:02d} elapsed",
              file=self.stream, flush=True)


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
