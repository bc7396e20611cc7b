"""Build scripted expert demonstrations, or report how far the expert gets (standalone script).

    python datasets_build/expert_demos.py --split train --num-goals 1000 --noise on --output demos.jsonl --seed 0
    python datasets_build/expert_demos.py --split train --report      # reward-1 counts and failure classes, noise off and on

The same as ``webshop-trl demos expert ...`` (options: ``--help``). Demos are appended one
episode per line; re-running the command resumes the file (goals already there are skipped),
``--overwrite`` starts it afresh.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl.cli.demos import add_expert_arguments, run_expert  # noqa: E402
from webshop_trl.errors import WebShopTrlError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_expert_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_expert(args)
    except WebShopTrlError as exc:
        print(f"expert_demos: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("expert_demos: interrupted (episodes already written are kept; run again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
