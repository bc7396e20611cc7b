"""Lucene BM25, as WebShop searches: Anserini's IndexCollection to build, SimpleSearcher to query.

Facts this module relies on (checked against Anserini 1.7.1, the jar in pyserini 1.6.0):

- ``SimpleSearcher.search(q, k)`` does not use Lucene's classic query parser. Its
  ``BagOfWordsQueryGenerator`` runs the query through the index analyzer (Anserini's
  ``DefaultEnglishAnalyzer``: StandardTokenizer, English possessive filter, lowercase, Lucene's 33
  English stop words, Porter stemmer) and ORs one TermQuery per distinct term, boosted by how often
  it occurs. So ``+ - && || ! ( ) { } [ ] ^ " ~ * ? : \\ /`` are never operators: they are dropped
  or kept inside words by the tokenizer, and a query with no indexable term returns no hits. This is
  also what WebShop's ``LuceneSearcher`` (a subclass of the same searcher) did.
- The default similarity is BM25 with k1=0.9, b=0.4 (``get_similarity()`` prints
  ``BM25(k1=0.9,b=0.4)``; Anserini's SimpleSearcher has had these defaults since long before the
  pyserini 0.17.0 WebShop pins, and WebShop never calls ``set_bm25``). Hits with equal scores are
  ordered by the document id string (``BREAK_SCORE_TIES_BY_DOCID``), so rankings do not depend on
  indexing order. Returned scores are rounded to 4 decimals afterwards (ScoreTiesAdjusterReranker),
  which does not reorder hits.
- One exception remains: more than 1,024 distinct terms exceed Lucene's ``maxClauseCount`` and
  raise ``TooManyClauses`` (WebShop would crash). We then search the same bag of words cut after
  its 1,024th distinct term: deterministic, and ranked by the words the query starts with.

A JVM cannot survive ``fork()``: create the engine in the process that will search, after any fork.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from webshop_trl.data.catalog import Catalog
from webshop_trl.errors import SearchEngineError
from webshop_trl.search.base import SearchConfig, SearchEngine, index_folder
from webshop_trl.search.cache import build_atomically
from webshop_trl.search.documents import documents_digest, iter_documents, write_json_collection
from webshop_trl.search.java import java_exception_text, start_jvm

LUCENE_SUBDIR = "lucene"  # the Lucene files live here; manifest.json sits beside it
INDEX_FORMAT = "anserini-json-v2"  # v2: no positions/docvectors


def build_lucene_index(
    documents: Iterable[tuple[str, str]],
    num_documents: int,
    index_path: Path,
    threads: int = 1,
    store_positions: bool = False,
    store_docvectors: bool = False,
    store_raw: bool = False,
) -> dict[str, Any]:
    """Index ``num_documents`` ``(id, contents)`` pairs into ``index_path`` in-process with IndexCollection.

    Settings follow WebShop's ``run_indexing.sh`` (JsonCollection, DefaultLuceneDocumentGenerator),
    except that positions, document vectors and the raw JSON are not stored by default: WebShop
    stored them, but bag-of-words BM25 reads none of them (rankings are identical), and leaving
    them out makes the build about 2.5 times faster and the index smaller. The index is merged
    into one segment.
    Returns counts and the time taken.
    """
    autoclass = start_jvm()
    work = index_path.parent / (index_path.name + ".docs")
    shutil.rmtree(work, ignore_errors=True)
    # one file per thread at least, so extra threads have something to do
    per_file = max(1, -(-num_documents // max(1, threads)))
    written = write_json_collection(documents, work, docs_per_file=per_file)
    started = time.perf_counter()
    args = autoclass("io.anserini.index.IndexCollection$Args")()
    args.input = str(work)
    args.index = str(index_path)
    args.collectionClass = "JsonCollection"
    args.generatorClass = "DefaultLuceneDocumentGenerator"
    args.threads = int(threads)
    args.storePositions = bool(store_positions)
    args.storeDocvectors = bool(store_docvectors)
    args.storeRaw = bool(store_raw)
    args.optimize = True
    args.quiet = True
    try:
        indexer = autoclass("io.anserini.index.IndexCollection")(args)
        indexer.run()
        counters = indexer.getCounters()
        indexed = int(counters.indexed.get())
        failed = int(counters.errors.get()) + int(counters.unindexable.get())
    except Exception as exc:
        raise SearchEngineError(f"Lucene indexing failed: {java_exception_text(exc)}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    if indexed != written or written != num_documents or failed:
        raise SearchEngineError(
            f"Lucene indexed {indexed} of {written} documents ({failed} failed; {num_documents} expected) into {index_path}"
        )
    return {"documents": indexed, "index_seconds": round(seconds, 3)}


def _lucene_expectation(digest: str, config: SearchConfig) -> dict[str, Any]:
    # k1/b are query-time settings in Lucene: they are not part of the index identity
    return {"engine": "lucene", "format": INDEX_FORMAT, "documents_digest": digest}


def ensure_lucene_index(catalog: Catalog, config: SearchConfig) -> tuple[Path, bool]:
    """The catalog's cached Lucene index folder, built now if missing or stale."""
    # streamed twice (hash, then build) rather than held: the full catalog's texts are ~2 GB
    expected = _lucene_expectation(documents_digest(iter_documents(catalog)), config)

    def build(tmp: Path) -> dict[str, Any]:
        return build_lucene_index(iter_documents(catalog), len(catalog), tmp / LUCENE_SUBDIR, threads=config.threads)

    return build_atomically(index_folder(config, catalog), expected, build, force=config.rebuild)


class LuceneSearchEngine(SearchEngine):
    """BM25 search over a Lucene index with Anserini's SimpleSearcher (the searcher WebShop uses)."""

    name = "lucene"
    MAX_CLAUSES = 1024  # Lucene's IndexSearcher.maxClauseCount default

    def __init__(self, index_path: Path, asins, k1: float = 0.9, b: float = 0.4) -> None:
        """``index_path`` is a Lucene index folder (ours, or WebShop's own, opened read-only)."""
        super().__init__(asins, index_path)
        self.k1, self.b = float(k1), float(b)
        autoclass = start_jvm()
        try:
            self._searcher = autoclass("io.anserini.search.SimpleSearcher")(str(self.index_path))
        except Exception as exc:
            raise SearchEngineError(
                f"cannot open the Lucene index at {self.index_path}: {java_exception_text(exc)}"
            ) from exc
        self._searcher.set_bm25(self.k1, self.b)
        self._pid = os.getpid()

    @classmethod
    def for_catalog(cls, catalog: Catalog, config: SearchConfig) -> "LuceneSearchEngine":
        folder, built = ensure_lucene_index(catalog, config)
        try:
            return cls(folder / LUCENE_SUBDIR, catalog.by_asin.keys(), k1=config.k1, b=config.b)
        except SearchEngineError:
            if built:
                raise
        # a cached index that no longer opens (damaged files): rebuild it once
        folder, _ = ensure_lucene_index(catalog, replace(config, rebuild=True))
        return cls(folder / LUCENE_SUBDIR, catalog.by_asin.keys(), k1=config.k1, b=config.b)

    def num_docs(self) -> int:
        return int(self._searcher.get_total_num_docs())

    def _search_ids(self, query: str, k: int) -> list[str]:
        if os.getpid() != self._pid:  # a forked child has no working JVM: fail instead of hanging
            raise SearchEngineError(
                "this Lucene engine was created before a fork(); the JVM does not survive it. Create the "
                "engine in the process that searches (e.g. in each worker), or use engine='bm25s'."
            )
        try:
            hits = self._searcher.search(query, int(k))
        except Exception as exc:
            if "TooManyClauses" not in java_exception_text(exc):
                raise SearchEngineError(f"Lucene search failed: {java_exception_text(exc)}") from exc
            hits = self._searcher.search(self._bounded_query(query), int(k))
        return [hit.docid for hit in hits]

    def _bounded_query(self, query: str) -> Any:
        """The bag-of-words query SimpleSearcher would build, over the analyzed terms up to the
        1,024th distinct one (Lucene's clause limit)."""
        autoclass = start_jvm()
        terms = autoclass("io.anserini.analysis.AnalyzerUtils").analyze(self._searcher.get_analyzer(), query)
        counts: dict[str, int] = {}
        for term in terms.toArray():
            if term not in counts and len(counts) == self.MAX_CLAUSES:
                break
            counts[term] = counts.get(term, 0) + 1
        Term = autoclass("org.apache.lucene.index.Term")
        TermQuery = autoclass("org.apache.lucene.search.TermQuery")
        BoostQuery = autoclass("org.apache.lucene.search.BoostQuery")
        should = autoclass("org.apache.lucene.search.BooleanClause$Occur").SHOULD
        builder = autoclass("org.apache.lucene.search.BooleanQuery$Builder")()
        for term, count in counts.items():
            builder.add(BoostQuery(TermQuery(Term("contents", term)), float(count)), should)
        return builder.build()

    def close(self) -> None:
        searcher = getattr(self, "_searcher", None)
        if searcher is not None:
            try:
                searcher.close()
            except Exception:
                pass
            self._searcher = None
