"""Build self-generated demonstrations (Feng & Feng §3.2) from a policy checkpoint (standalone script).

    python datasets_build/self_generated.py --checkpoint checkpoints/il --temperature 1.0 --num-keep 100 --output self.jsonl
    python datasets_build/self_generated.py --checkpoint checkpoints/il --threshold 0.8 --max-episodes 2000

The same as ``webshop-trl demos self ...`` (options: ``--help``). The policy plays train goals with
sampling; episodes that buy with reward >= --threshold (default 1.0) are kept with their loops
removed, appended one per line; every episode tried is logged beside the output
(``<stem>.attempts.jsonl``), so re-running the command resumes where it stopped. Prints tried,
kept, acceptance rate and the mean length before/after pruning.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl.cli.demos import add_self_arguments, run_self  # noqa: E402
from webshop_trl.cli.common import run_standalone  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return run_standalone("self_generated", __doc__, add_self_arguments, run_self, argv, interrupted="episodes already written are kept; run again to resume")


if __name__ == "__main__":
    sys.exit(main())
