"""Build scripted expert demonstrations, or report how far the expert gets (standalone script).

    python datasets_build/expert_demos.py --split train --num-goals 1000 --noise on --output demos.jsonl --seed 0
    python datasets_build/expert_demos.py --split train --report      # reward-1 counts and failure classes, noise off and on

The same as ``webshop-trl demos expert ...`` (options: ``--help``). Demos are appended one
episode per line; re-running the command resumes the file (goals already there are skipped),
``--overwrite`` starts it afresh.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl.cli.demos import add_expert_arguments, run_expert  # noqa: E402
from webshop_trl.cli.common import run_standalone  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return run_standalone("expert_demos", __doc__, add_expert_arguments, run_expert, argv, interrupted="episodes already written are kept; run again to resume")


if __name__ == "__main__":
    sys.exit(main())
