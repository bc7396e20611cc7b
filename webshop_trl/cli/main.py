"""webshop-trl: the WebShop environment, its data, search index, agents and evaluation.

Each sub-command lives in its own module under `webshop_trl.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from webshop_trl.errors import WebShopTrlError

COMMAND_MODULES = ("data", "index", "evaluate", "play", "demos", "preferences", "train", "recommend", "thompson", "compare",
                   "pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webshop-trl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"webshop_trl.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WebShopTrlError as exc:
        print(f"webshop-trl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"webshop-trl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
