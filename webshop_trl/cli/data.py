"""`webshop-trl data fetch` (get the WebShop files, verified) and `webshop-trl data manifest`.

`data manifest DIR` exists for users with a newer or different data release: it writes the
sha256 list that `data fetch --manifest FILE` then verifies against, so nobody needs a switch
that turns verification off.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="fetch and check the WebShop data files")
    sub = parser.add_subparsers(dest="data_command", required=True)

    fetch = sub.add_parser(
        "fetch",
        help="copy or download the WebShop files into the data folder, verifying sha256",
        description="Copy (folder) or download (http/https/file URL: <URL>/<relative path>) the "
        "WebShop files listed in the package manifest, verifying each sha256. Files already present "
        "with the right hash are skipped, so a re-run is quick and a killed run resumes.",
    )
    fetch.add_argument(
        "--source",
        metavar="DIR|URL",
        help="folder or base URL holding the files (default: $WEBSHOP_TRL_SOURCE or "
        "../shared/webshop_data beside the checkout)",
    )
    fetch.add_argument("--dest", metavar="DIR", type=Path, help="where to put them (default: data/webshop)")
    fetch.add_argument("--force", action="store_true", help="fetch again even files that are present and valid")
    fetch.add_argument(
        "--manifest",
        metavar="FILE",
        type=Path,
        help="a JSON manifest with your own file list and hashes (see `webshop-trl data manifest`)",
    )
    fetch.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    fetch.set_defaults(func=run_fetch)

    manifest = sub.add_parser(
        "manifest",
        help="write a JSON manifest (paths, sizes, sha256) of a data folder, for --manifest",
    )
    manifest.add_argument("folder", type=Path, help="the data release folder to hash")
    manifest.add_argument("--name", help="release name stored in the manifest (default: the folder name)")
    manifest.add_argument(
        "--optional",
        action="append",
        default=[],
        metavar="PREFIX",
        help="paths starting with PREFIX are optional (repeatable), e.g. lucene_index_1k/",
    )
    manifest.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    manifest.set_defaults(func=run_manifest)


def run_fetch(args: argparse.Namespace) -> int:
    from webshop_trl.data.fetch import fetch_webshop_data
    from webshop_trl.data.manifest import load_manifest

    manifest = load_manifest(args.manifest) if args.manifest else None
    log = None if args.quiet else print
    report = fetch_webshop_data(
        args.source, args.dest, force=args.force, manifest=manifest, progress=not args.quiet, log=log
    )
    if not args.quiet:
        if report.stale_parts_removed:
            print(f"removed {len(report.stale_parts_removed)} partial file(s) left by an interrupted fetch")
        for path in report.missing_optional:
            print(f"optional, not in source: {path}")
    print(f"webshop data from {report.source}: {report.summary()}")
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    from webshop_trl.data.manifest import manifest_from_dir

    manifest = manifest_from_dir(args.folder, args.name or args.folder.resolve().name, args.optional)
    text = manifest.to_json()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(manifest.entries)} entries to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
