"""Build preference pairs for DPO from trajectory files (standalone script).

    python datasets_build/build_preferences.py demos.jsonl --reference-model outputs/il-policy --output outputs/prefs/expert
    python datasets_build/build_preferences.py demos.jsonl --rejection uniform --output prefs --push_to_hub --hub_dataset_id me/webshop-dpo

The same as ``webshop-trl build-preferences ...`` (options: ``--help``). Writes a DatasetDict
(train/eval, split by goal) with a dataset card and build_info.json, atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl.cli.preferences import add_arguments, run  # noqa: E402
from webshop_trl.errors import WebShopTrlError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except WebShopTrlError as exc:
        print(f"build_preferences: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build_preferences: interrupted (nothing was written at the output path)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
