"""Search speed of both engines: index build time, then queries per second one query at a time.

Queries are the instructions of the synthetic goals of the catalog (lowercased, as an agent's
``search[...]`` reaches the engine), each searched for the top 50 as WebShop does. Each engine runs
in its own fresh process (a JVM can start only once per process), on one CPU core: build the
index into an empty folder (timed), open it, an untimed warm-up pass over the first queries (the
JVM's JIT compiles the hot paths), then the timed pass.

    python benchmarks/search_qps.py [--engine lucene|bm25s|all] [--data-dir DIR] [--warmup 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(engine_name: str, data_dir: str | None, warmup: int, max_queries: int | None) -> dict:
    """Run inside the child process: build, open, warm up, time."""
    from webshop_trl.data import build_goals, load_catalog
    from webshop_trl.search import SearchConfig, build_index, make_search_engine

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    catalog = load_catalog(data_dir)
    queries = [goal.instruction_text.lower() for goal in build_goals(catalog, "synthetic")]
    if max_queries:
        queries = queries[:max_queries]
    with tempfile.TemporaryDirectory(prefix="webshop-qps-") as index_dir:
        config = SearchConfig(engine=engine_name, index_dir=index_dir)
        started = time.perf_counter()
        if engine_name == "lucene":  # JVM start-up is paid once per process, apart from the build
            from webshop_trl.search.java import start_jvm

            start_jvm()
        jvm_seconds = time.perf_counter() - started
        started = time.perf_counter()
        build_index(catalog, config)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        engine = make_search_engine(catalog, config)
        open_seconds = time.perf_counter() - started
        for query in queries[:warmup]:
            engine.search(query, 50)
        latencies = []
        hits = 0
        started = time.perf_counter()
        for query in queries:
            t0 = time.perf_counter()
            hits += len(engine.search(query, 50))
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - started
        engine.close()
    latencies.sort()
    return {
        "engine": engine_name,
        "products": len(catalog),
        "queries": len(queries),
        "jvm_start_seconds": round(jvm_seconds, 3),
        "index_build_seconds": round(build_seconds, 3),
        "index_open_seconds": round(open_seconds, 3),
        "queries_per_second": round(len(queries) / total, 1),
        "mean_ms": round(1000 * total / len(queries), 3),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 3),
        "mean_hits": round(hits / len(queries), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["lucene", "bm25s", "all"], default="all")
    parser.add_argument("--data-dir", default=None, help="WebShop data folder (default: the fetched data, else ../shared)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed queries first")
    parser.add_argument("--max-queries", type=int, default=None, help="time only the first N instructions")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    data_dir = args.data_dir
    if data_dir is None:
        from webshop_trl import paths

        fetched = paths.webshop_data_dir()
        data_dir = str(fetched if (fetched / "items_shuffle_1000.reconstructed.json").is_file() else paths.default_source())

    if args.child:
        print(json.dumps(measure(args.engine, data_dir, args.warmup, args.max_queries)))
        return 0

    engines = ["lucene", "bm25s"] if args.engine == "all" else [args.engine]
    print(f"{'engine':7} {'queries':>7} {'q/s':>8} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7} {'build s':>8} {'open s':>7} {'JVM s':>6}")
    for name in engines:
        cmd = [sys.executable, __file__, "--child", "--engine", name, "--data-dir", data_dir, "--warmup", str(args.warmup)]
        if args.max_queries:
            cmd += ["--max-queries", str(args.max_queries)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:7} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:7} {r['queries']:>7} {r['queries_per_second']:>8.0f} {r['mean_ms']:>8.3f} {r['p50_ms']:>7.3f} "
            f"{r['p99_ms']:>7.3f} {r['index_build_seconds']:>8.2f} {r['index_open_seconds']:>7.2f} {r['jvm_start_seconds']:>6.2f}"
        )
    print("one query at a time, top 50, one CPU core, after warm-up; build = index of the whole catalog")
    return 0


if __name__ == "__main__":
    sys.exit(main())
