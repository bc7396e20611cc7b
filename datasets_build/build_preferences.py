"""Build preference pairs for DPO from trajectory files (standalone script).

    python datasets_build/build_preferences.py demos.jsonl --reference-model outputs/il-policy --output outputs/prefs/expert
    python datasets_build/build_preferences.py demos.jsonl --rejection uniform --output prefs --push_to_hub --hub_dataset_id me/webshop-dpo

The same as ``webshop-trl build-preferences ...`` (options: ``--help``). Writes a DatasetDict
(train/eval, split by goal) with a dataset card and build_info.json, atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl.cli.preferences import add_arguments, run  # noqa: E402
from webshop_trl.cli.common import run_standalone  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return run_standalone("build_preferences", __doc__, add_arguments, run, argv, interrupted="nothing was written at the output path")


if __name__ == "__main__":
    sys.exit(main())
