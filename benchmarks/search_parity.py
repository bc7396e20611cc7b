"""How close our search rankings are to WebShop's own Lucene index (shared/webshop_data/lucene_index_1k).

For every human query in goal_query_map.json (lowercased, as WebShop's search does), and separately
for every instruction in it, compare the top-k of

- our Lucene engine (index built here from `product_document`) with WebShop's own index, and
- our bm25s engine (no Java) with WebShop's own index.

WebShop's index is searched with the same Anserini SimpleSearcher (BM25 k1=0.9, b=0.4), so this
measures what the index holds (document text, analyzer, term statistics), not differences between
pyserini versions' searchers. Printed per engine: mean top-k overlap |A∩B|/k (as specified: a
query with fewer than k hits caps it below 1), the same overlap over max(|A|,|B|), the share of
identical top-k lists, and for the lists that differ, why (same hits in another order, analyzer
differences, score near-ties).

    python benchmarks/search_parity.py [--data-dir DIR] [--reference-index DIR] [--k 10] [--json OUT]
        [--ablations]   # also bm25s variants without each Lucene detail, to show what each is worth
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webshop_trl import paths  # noqa: E402
from webshop_trl.data import load_catalog  # noqa: E402
from webshop_trl.errors import SearchEngineError  # noqa: E402
from webshop_trl.search import SearchConfig, make_search_engine, normalize_query  # noqa: E402
from webshop_trl.search.analysis import analyze  # noqa: E402
from webshop_trl.search.lucene import LuceneSearchEngine  # noqa: E402


def load_queries(goal_query_map: Path) -> dict[str, list[str]]:
    """{"human queries": [...], "instructions": [...]}, lowercased as WebShop's search does."""
    mapping = json.loads(goal_query_map.read_text(encoding="utf-8"))
    return {
        "human queries": [normalize_query(q) for queries in mapping.values() for q in queries],
        "instructions": [normalize_query(instruction) for instruction in mapping],
    }


def open_reference(index: Path, asins) -> tuple[LuceneSearchEngine, Path | None]:
    """WebShop's index, opened in place (reading needs no lock); from a temporary copy if that fails."""
    try:
        return LuceneSearchEngine(index, asins), None
    except SearchEngineError:
        tmp = Path(tempfile.mkdtemp(prefix="webshop-ref-index-"))
        shutil.copytree(index, tmp / "index")
        for f in (tmp / "index").iterdir():
            f.chmod(0o644)
        return LuceneSearchEngine(tmp / "index", asins), tmp


def java_terms(engine: LuceneSearchEngine, text: str) -> list[str]:
    from webshop_trl.search.java import start_jvm

    utils = start_jvm()("io.anserini.analysis.AnalyzerUtils")
    return list(utils.analyze(engine._searcher.get_analyzer(), text).toArray())


def reference_scores(engine: LuceneSearchEngine, query: str, k: int) -> dict[str, float]:
    """ASIN -> score of WebShop's index (Anserini rounds scores to 4 decimals)."""
    return {hit.docid.upper(): float(hit.score) for hit in engine._searcher.search(query, k)}


def why_different(query: str, ours: list[str], theirs: list[str], reference: LuceneSearchEngine, k: int) -> str:
    """A one-word reason for one differing top-k list."""
    if set(ours) == set(theirs):
        return "same hits, other order"
    if analyze(query) != java_terms(reference, query):
        return "query analyzed differently"
    scores = reference_scores(reference, query, k * 2)
    boundary = [scores.get(a) for a in set(ours) ^ set(theirs) if a in scores]
    if boundary and max(boundary) - min(boundary) <= 1e-4:
        return "score near-tie at the cut"
    return "other (scores differ: analyzer, length norms or statistics)"


class _Variant:
    """A bm25s ranking built in memory, to show what each Lucene detail is worth (--ablations)."""

    def __init__(self, catalog, tokens, retriever, tie_by_asin: bool, tokenize_query):
        import numpy as np

        self.asins = [p.asin for p in catalog.products]
        self.retriever, self.tokenize_query, self.np = retriever, tokenize_query, np
        rank = np.argsort(np.argsort(np.array(self.asins, dtype=str), kind="stable"))
        self.tie_key = rank if tie_by_asin else np.arange(len(self.asins))

    def search(self, query: str, k: int = 10) -> list[str]:
        np = self.np
        ids = self.retriever.get_tokens_ids(self.tokenize_query(query))
        if not ids:
            return []
        scores = self.retriever.get_scores_from_ids(ids)
        docs = np.flatnonzero(scores > 0)
        order = np.lexsort((self.tie_key[docs], -scores[docs]))[:k]
        return [self.asins[i] for i in docs[order]]


def ablation_variants(catalog) -> dict:
    """bm25s rankings that each drop one of the Lucene details the bm25s engine reproduces."""
    import bm25s
    import Stemmer

    from webshop_trl.search.bm25s_engine import _lucene_scored_bm25
    from webshop_trl.search.documents import iter_documents

    texts = [text for _, text in iter_documents(catalog)]
    stemmer = Stemmer.Stemmer("english")
    variants = {}

    def stock_query(q: str) -> list[str]:
        return bm25s.tokenize([q], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]

    stock_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    stock = bm25s.BM25(k1=0.9, b=0.4)
    stock.index(stock_tokens, show_progress=False)
    variants["bm25s stock (its tokenizer, 'en' stop words, PyStemmer english)"] = _Variant(catalog, stock_tokens, stock, True, stock_query)
    ours = [analyze(t) for t in texts]
    exact = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    exact.index(ours, show_progress=False)
    variants["Lucene analyzer, exact doc lengths (no one-byte norms)"] = _Variant(catalog, ours, exact, True, analyze)
    lossy = _lucene_scored_bm25(bm25s)(k1=0.9, b=0.4, method="lucene")
    lossy.index(ours, show_progress=False)
    variants["Lucene analyzer and norms, ties by catalog order (not ASIN)"] = _Variant(catalog, ours, lossy, False, analyze)
    return variants


def compare(engine, reference, queries: list[str], k: int) -> dict:
    overlap = overlap_max = identical = 0.0
    short = 0
    reasons: Counter[str] = Counter()
    examples: list[dict] = []
    for query in queries:
        ours, theirs = engine.search(query, k), reference.search(query, k)
        common = len(set(ours) & set(theirs))
        short += len(theirs) < k
        overlap += common / k
        overlap_max += common / max(len(ours), len(theirs)) if (ours or theirs) else 1.0
        if ours == theirs:
            identical += 1
            continue
        reason = why_different(query, ours, theirs, reference, k)
        reasons[reason] += 1
        if len(examples) < 5:
            examples.append({"query": query, "ours": ours, "webshop": theirs, "reason": reason})
    n = len(queries)
    return {
        "queries": n,
        f"mean_top{k}_overlap": round(overlap / n, 4),
        f"mean_top{k}_overlap_of_max": round(overlap_max / n, 4),
        "identical_share": round(identical / n, 4),
        f"webshop_lists_shorter_than_{k}": short,
        "differences": dict(reasons),
        "examples": examples,
    }


def main(argv: list[str] | None = None) -> int:
    source = paths.default_source()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=source, help="WebShop data folder (default: ../shared/webshop_data)")
    parser.add_argument("--reference-index", type=Path, default=None, help="WebShop's index (default: <data-dir>/lucene_index_1k)")
    parser.add_argument("--index-dir", default=None, help="our index cache (default: a fresh temporary folder)")
    parser.add_argument("--k", type=int, default=10, help="compare the top k")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--ablations", action="store_true", help="also rank with bm25s variants that each drop one Lucene detail")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        parser.error("no data folder: pass --data-dir")
    reference_index = args.reference_index or args.data_dir / "lucene_index_1k"

    catalog = load_catalog(args.data_dir)
    queries = load_queries(args.data_dir / "goal_query_map.json")
    index_dir = args.index_dir or tempfile.mkdtemp(prefix="webshop-parity-")
    reference, tmp = open_reference(reference_index, catalog.by_asin.keys())
    results: dict = {"k": args.k, "reference_index": str(reference_index), "engines": {}}
    try:
        for name in ("lucene", "bm25s"):
            started = time.perf_counter()
            engine = make_search_engine(catalog, SearchConfig(engine=name, index_dir=index_dir))
            ready = time.perf_counter() - started
            results["engines"][name] = {
                "index_ready_seconds": round(ready, 2),
                **{label: compare(engine, reference, qs, args.k) for label, qs in queries.items()},
            }
            engine.close()
        if args.ablations:
            for name, variant in ablation_variants(catalog).items():
                results["engines"][name] = {label: compare(variant, reference, qs, args.k) for label, qs in queries.items()}
    finally:
        reference.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.index_dir is None:
            shutil.rmtree(index_dir, ignore_errors=True)

    k = args.k
    print(f"Top-{k} agreement with WebShop's own index ({reference_index}), {len(catalog)} products")
    width = max(len(name) for name in results["engines"])
    print(f"{'engine':{width}} {'query set':15} {'queries':>7} {'overlap/k':>10} {'overlap/max':>12} {'identical':>10}  differences")
    for name, res in results["engines"].items():
        for label in queries:
            r = res[label]
            diffs = ", ".join(f"{reason}: {n}" for reason, n in r["differences"].items()) or "none"
            print(
                f"{name:{width}} {label:15} {r['queries']:>7} {r[f'mean_top{k}_overlap']:>10.4f} "
                f"{r[f'mean_top{k}_overlap_of_max']:>12.4f} {r['identical_share']:>10.2%}  {diffs}"
            )
    short = results["engines"]["lucene"]["human queries"][f"webshop_lists_shorter_than_{k}"]
    print(f"overlap/k counts a query with fewer than {k} hits as below 1 even when both lists are equal "
          f"({short} human queries have fewer); overlap/max divides by the longer list instead.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
