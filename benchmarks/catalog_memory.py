"""Catalog load time and memory: the real 1k catalog and a synthetic 100k one.

Why: the full WebShop catalog is 1.18M products (5.2 GB of JSON). `load_catalog` streams it with
ijson so that peak memory is about the normalised products, not raw JSON text + parsed list +
products. This benchmark measures that claim and compares it with the naive `json.load`.

Each measurement runs in a fresh subprocess (this script in child mode), so peak RSS is not
inflated by an earlier load. Rows:
  load_catalog      the package's streaming loader (products + attribute file + human file)
  json.load         only `json.load` of the product file (raw text + parsed list, nothing else)
  json.load+norm    a naive loader: json.load of the files, then the same normalisation
Columns: wall time of the load (median over --repeat runs), peak RSS growth during the load
(VmHWM reset before it), tracemalloc peak (separate run: tracemalloc slows Python code), and
what stays allocated afterwards (the result's size).

The 100k catalog is made by repeating the 1k products with new unique ASINs, streamed record by
record to a temporary folder, so the generator itself stays small.

Usage: python benchmarks/catalog_memory.py [--sizes 1000,100000] [--repeat 3] [--source DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from webshop_trl.data.catalog import (  # noqa: E402
    ATTRIBUTE_FILE_DEFAULT,
    HUMAN_INSTRUCTION_FILE_DEFAULT,
    PRODUCT_FILE_DEFAULT,
)

MODES = ("load_catalog", "json.load", "json.load+norm")


# --------------------------------------------------------------------------- synthetic catalog


def _new_asin(copy: int, i: int) -> str:
    """10 characters like WebShop's ASINs; copy 0 keeps the real ones."""
    return f"Z{copy:03d}{i:06d}"


def generate_catalog(source: Path, out: Path, n_products: int) -> Path:
    """Write an ``n_products`` catalog (products + attribute file + human file) into ``out``.

    Streams the 1k files once per copy with ijson and writes one record at a time, so memory
    stays at one record whatever ``n_products`` is.
    """
    import ijson

    out.mkdir(parents=True, exist_ok=True)
    copies = -(-n_products // 1000)
    written = 0
    with open(out / PRODUCT_FILE_DEFAULT, "w", encoding="utf-8") as fh:
        fh.write("[")
        for copy in range(copies):
            with open(source / PRODUCT_FILE_DEFAULT, "rb") as src:
                for i, product in enumerate(ijson.items(src, "item", use_float=True)):
                    if written == n_products:
                        break
                    if copy:
                        product["asin"] = _new_asin(copy, i)
                    fh.write(",\n" if written else "\n")
                    fh.write(json.dumps(product))
                    written += 1
        fh.write("\n]\n")
    with open(out / ATTRIBUTE_FILE_DEFAULT, "w", encoding="utf-8") as fh:
        fh.write("{")
        first = True
        for copy in range(copies):
            with open(source / PRODUCT_FILE_DEFAULT, "rb") as src:
                order = [p["asin"] for p in ijson.items(src, "item")]
            index = {asin: i for i, asin in enumerate(order)}
            with open(source / ATTRIBUTE_FILE_DEFAULT, "rb") as src:
                for asin, record in ijson.kvitems(src, "", use_float=True):
                    key = asin if copy == 0 else _new_asin(copy, index[asin])
                    fh.write(("\n" if first else ",\n") + json.dumps(key) + ": " + json.dumps(record))
                    first = False
        fh.write("\n}\n")
    (out / HUMAN_INSTRUCTION_FILE_DEFAULT).write_bytes((source / HUMAN_INSTRUCTION_FILE_DEFAULT).read_bytes())
    return out


# --------------------------------------------------------------------------- child: one measurement


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _naive_load(folder: Path, normalise: bool):
    from webshop_trl.data.catalog import Catalog, normalize_product

    with open(folder / PRODUCT_FILE_DEFAULT, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not normalise:
        return raw
    with open(folder / ATTRIBUTE_FILE_DEFAULT, encoding="utf-8") as fh:
        attributes = json.load(fh)
    with open(folder / HUMAN_INSTRUCTION_FILE_DEFAULT, encoding="utf-8") as fh:
        human = json.load(fh)
    seen: set[str] = set()
    products = []
    for p in raw:
        if p["asin"] == "nan" or len(p["asin"]) > 10 or p["asin"] in seen:
            continue
        seen.add(p["asin"])
        products.append(normalize_product(p, attributes, human, 0))
    return Catalog(products=products, source_files={}, price_seed=0)


def _load(mode: str, folder: Path):
    if mode == "load_catalog":
        from webshop_trl.data import load_catalog

        return load_catalog(folder)
    return _naive_load(folder, normalise=mode == "json.load+norm")


def child(mode: str, folder: Path, trace: bool) -> dict:
    import tracemalloc

    import webshop_trl.data  # noqa: F401  (imports are not part of the load)

    gc.collect()
    result: dict = {"mode": mode}
    if trace:
        tracemalloc.start()
        _load_result = _load(mode, folder)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.update(tracemalloc_peak=peak, retained=current)
    else:
        reset = _reset_peak_rss()
        rss_before = _status_kb("VmRSS") or 0
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        _load_result = _load(mode, folder)
        seconds = time.perf_counter() - t0
        hwm = _status_kb("VmHWM") if reset else None
        if hwm is None:  # no /proc reset: ru_maxrss is a lifetime peak (imports included)
            hwm, rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, maxrss_before
        result.update(
            seconds=seconds,
            peak_rss_delta=(hwm - rss_before) * 1024,
            rss_after_delta=((_status_kb("VmRSS") or rss_before) - rss_before) * 1024,
        )
    n = len(_load_result.products) if hasattr(_load_result, "products") else len(_load_result)
    result["records"] = n
    return result


# --------------------------------------------------------------------------- parent


def _run_child(mode: str, folder: Path, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--dir", str(folder)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {mode} on {folder} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(folder: Path, repeat: int, modes: tuple[str, ...]) -> list[dict]:
    rows = []
    for mode in modes:
        runs = [_run_child(mode, folder, trace=False) for _ in range(repeat)]
        traced = _run_child(mode, folder, trace=True)
        rows.append(
            {
                "mode": mode,
                "records": runs[0]["records"],
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_rss_delta": statistics.median(r["peak_rss_delta"] for r in runs),
                "tracemalloc_peak": traced["tracemalloc_peak"],
                "retained": traced["retained"],
            }
        )
    return rows


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def print_table(label: str, file_bytes: int, rows: list[dict]) -> None:
    print(f"\n{label}: product file {_mb(file_bytes)} MiB")
    header = f"{'loader':<16}{'records':>9}{'time s':>9}{'peak RSS +MiB':>15}{'tracemalloc peak MiB':>22}{'retained MiB':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<16}{r['records']:>9,}{r['seconds']:>9.2f}{_mb(r['peak_rss_delta']):>15}"
            f"{_mb(r['tracemalloc_peak']):>22}{_mb(r['retained']):>14}"
        )
    stream = next((r for r in rows if r["mode"] == "load_catalog"), None)
    naive = next((r for r in rows if r["mode"] == "json.load+norm"), None)
    if stream and naive:
        print(
            f"streaming peak / naive peak: RSS {stream['peak_rss_delta'] / naive['peak_rss_delta']:.2f}, "
            f"tracemalloc {stream['tracemalloc_peak'] / naive['tracemalloc_peak']:.2f}; streaming peak / "
            f"retained result: {stream['tracemalloc_peak'] / stream['retained']:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000", help="catalog sizes, comma separated (1000 = the real file)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per loader (median)")
    parser.add_argument("--source", type=Path, help="folder with the 1k files (default: the fetched data)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"loaders to measure: {', '.join(MODES)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.dir, args.trace)))
        return 0

    from webshop_trl import paths

    source = args.source
    if source is None:
        fetched = paths.webshop_data_dir()
        source = fetched if (fetched / PRODUCT_FILE_DEFAULT).is_file() else paths.default_source()
    if source is None or not (source / PRODUCT_FILE_DEFAULT).is_file():
        print("error: no WebShop data; run `webshop-trl data fetch` or pass --source DIR", file=sys.stderr)
        return 2
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}: choose from {', '.join(MODES)}")

    import ijson

    print(f"python {sys.version.split()[0]}, ijson backend {ijson.backend}, {os.cpu_count()} CPUs; source {source}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="catalog_memory_") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            if size == 1000:
                folder = source
            else:
                t0 = time.perf_counter()
                folder = generate_catalog(source, Path(tmp) / f"n{size}", size)
                print(f"generated {size:,} products in {time.perf_counter() - t0:.1f}s -> {folder}")
            file_bytes = (folder / PRODUCT_FILE_DEFAULT).stat().st_size
            rows = measure(folder, args.repeat, modes)
            print_table(f"{size:,} products", file_bytes, rows)
            results[size] = {"product_file_bytes": file_bytes, "rows": rows}
            if size != 1000:
                for f in folder.iterdir():
                    f.unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
