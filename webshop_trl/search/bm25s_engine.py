"""BM25 without Java: bm25s's index format, filled with the scores Lucene would compute.

bm25s stores one precomputed BM25 weight per (document, term) in a sparse matrix, so k1 and b are
part of the index (unlike Lucene, where they are query-time settings) and are recorded in its
manifest. What goes into that matrix is chosen to rank as WebShop's Lucene index does:

- terms come from `webshop_trl.search.analysis` (Lucene's tokenizer rules, stop words and Porter
  variant) rather than bm25s's own tokenizer and PyStemmer, which change "assembly",
  "technology" and one- or two-letter words differently from Lucene;
- each weight is computed as Lucene 9's BM25Similarity does, in 32-bit floats, with the document
  length rounded to Lucene's one-byte norm (exact to 23 terms, then 4 significant bits): without
  that rounding, near-tied products swap places in about a third of the queries;
- a document's score sums its term weights in double precision and rounds to float, as Lucene's
  disjunction scorers do; a repeated query word counts once per occurrence (Lucene boosts it);
- hits are the documents matching at least one term, ordered by score and then by ASIN, as Lucene
  breaks ties by document id; a query is cut after its 1,024th distinct term, as Lucene's clause
  limit forces in the Lucene engine.

Remaining differences: a repeated query word multiplies the stored weight instead of the idf (a
last-bit rounding difference), and the few tokenizer rules not mirrored (see `analysis`).
`benchmarks/search_parity.py` measures the agreement.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from webshop_trl.data.catalog import Catalog
from webshop_trl.errors import SearchEngineError
from webshop_trl.search.analysis import analyze
from webshop_trl.search.base import SearchConfig, SearchEngine, index_folder
from webshop_trl.search.cache import build_atomically
from webshop_trl.search.documents import documents_digest, iter_documents

BM25S_SUBDIR = "bm25s"
IDS_FILE = "asins.json"
INDEX_FORMAT = "bm25s-lucene-bm25-v1"
MAX_QUERY_TERMS = 1024


def _bm25s():
    try:
        import bm25s
    except ImportError as exc:  # pragma: no cover - bm25s is an install requirement
        raise SearchEngineError("the bm25s engine needs `pip install bm25s==0.3.16`") from exc
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


_NORM_FREE_VALUES = 24  # Lucene SmallFloat: byte values below this encode a length exactly


def lucene_norm_length(length: int) -> int:
    """The document length Lucene's BM25 sees: ``byte4ToInt(intToByte4(length))`` (SmallFloat)."""
    if length < _NORM_FREE_VALUES:
        return length
    x = length - _NORM_FREE_VALUES
    if x.bit_length() < 4:  # "subnormal": kept exactly
        return length
    shift = x.bit_length() - 4
    return _NORM_FREE_VALUES + (((x >> shift) & 0x07 | 0x08) << shift)


def lucene_bm25_weights(
    corpus_token_ids: list[list[int]], n_vocab: int, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lucene's per-(document, term) BM25 weight, in float32: returns (weights, doc index, term id).

    Mirrors BM25Similarity: idf = (float) ln(1 + (N - df + 0.5) / (df + 0.5)) with N the number of
    documents having a term; avgdl = (float) total terms / N; normInverse = 1 / (k1 * ((1 - b) + b *
    normLength / avgdl)); weight = idf - idf / (1 + tf * normInverse).
    """
    f32 = np.float32
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    tfs: list[np.ndarray] = []
    lengths = np.zeros(len(corpus_token_ids), dtype=np.int64)
    for doc, ids in enumerate(corpus_token_ids):
        lengths[doc] = len(ids)
        if not ids:
            continue
        terms, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        rows.append(np.full(len(terms), doc, dtype=np.int64))
        cols.append(terms)
        tfs.append(counts)
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=f32), empty, empty
    row, col, tf = np.concatenate(rows), np.concatenate(cols), np.concatenate(tfs)
    doc_count = int((lengths > 0).sum())
    df = np.bincount(col, minlength=n_vocab)
    idf = np.log(1.0 + (doc_count - df + 0.5) / (df + 0.5)).astype(f32)
    avgdl = f32(lengths.sum() / doc_count)
    distinct, which = np.unique(lengths, return_inverse=True)
    norm_len = np.array([lucene_norm_length(int(n)) for n in distinct], dtype=f32)[which]
    k1f, bf = f32(k1), f32(b)
    norm_inverse = f32(1) / (k1f * ((f32(1) - bf) + bf * norm_len / avgdl))
    weight = idf[col]
    scores = weight - weight / (f32(1) + tf.astype(f32) * norm_inverse[row])
    return scores.astype(f32), row, col


def _lucene_scored_bm25(bm25s):
    """A bm25s.BM25 whose index build (the hook bm25s documents for this) stores Lucene's weights."""

    class LuceneScoredBM25(bm25s.BM25):
        def build_index_from_ids(self, unique_token_ids, corpus_token_ids, show_progress=True, leave_progress=False):
            n_vocab = len(unique_token_ids)
            self.nonoccurrence_array = None  # only BM25L/BM25+ use it
            data, row, col = lucene_bm25_weights(corpus_token_ids, n_vocab, self.k1, self.b)
            data, indices, indptr = self._np_csc(data=data, rows=row, cols=col, shape=(len(corpus_token_ids), n_vocab))
            return {"data": data.astype(self.dtype), "indices": indices, "indptr": indptr, "num_docs": len(corpus_token_ids)}

    return LuceneScoredBM25


def build_bm25s_index(documents: Iterable[tuple[str, str]], out_dir: Path, k1: float, b: float) -> dict[str, Any]:
    """Analyze and index ``(id, contents)`` documents; write the bm25s files and the id list.

    Only the analyzed terms are kept in memory, not the texts.
    """
    bm25s = _bm25s()
    doc_ids: list[str] = []
    tokens: list[list[str]] = []
    for doc_id, text in documents:
        doc_ids.append(doc_id)
        tokens.append(analyze(text))
    retriever = _lucene_scored_bm25(bm25s)(k1=k1, b=b, method="lucene")
    retriever.index(tokens, show_progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    retriever.save(str(out_dir), show_progress=False)
    (out_dir / IDS_FILE).write_text(json.dumps(doc_ids), encoding="utf-8")
    return {"documents": len(doc_ids), "vocabulary": len(retriever.vocab_dict)}


def ensure_bm25s_index(catalog: Catalog, config: SearchConfig) -> tuple[Path, bool]:
    """The catalog's cached bm25s index folder, built now if missing or stale (texts, k1 or b changed)."""
    expected = {
        "engine": "bm25s",
        "format": INDEX_FORMAT,
        "documents_digest": documents_digest(iter_documents(catalog)),
        "k1": config.k1,
        "b": config.b,
    }

    def build(tmp: Path) -> dict[str, Any]:
        return build_bm25s_index(iter_documents(catalog), tmp / BM25S_SUBDIR, config.k1, config.b)

    return build_atomically(index_folder(config, catalog), expected, build, force=config.rebuild)


class Bm25sSearchEngine(SearchEngine):
    """BM25 search over a bm25s index (Lucene-equivalent weights, see the module doc); no Java."""

    name = "bm25s"

    def __init__(self, index_path: Path, asins) -> None:
        super().__init__(asins, index_path)
        bm25s = _bm25s()
        try:
            self._retriever = bm25s.BM25.load(str(self.index_path), show_progress=False)
            doc_ids = json.loads((self.index_path / IDS_FILE).read_text(encoding="utf-8"))
        except Exception as exc:  # missing files, truncated arrays, bad JSON
            raise SearchEngineError(f"cannot open the bm25s index at {self.index_path}: {exc}") from exc
        self._doc_ids = np.array(doc_ids, dtype=object)
        self._vocab: dict[str, int] = self._retriever.vocab_dict
        # tie-break key: a document's rank when ids are sorted as strings (Lucene sorts ties by id)
        order = np.argsort(np.array(doc_ids, dtype=str), kind="stable")
        self._id_rank = np.empty(len(doc_ids), dtype=np.int64)
        self._id_rank[order] = np.arange(len(doc_ids))

    @classmethod
    def for_catalog(cls, catalog: Catalog, config: SearchConfig) -> "Bm25sSearchEngine":
        folder, built = ensure_bm25s_index(catalog, config)
        try:
            return cls(folder / BM25S_SUBDIR, catalog.by_asin.keys())
        except SearchEngineError:
            if built:
                raise
        # a cached index that no longer loads (damaged files): rebuild it once
        folder, _ = ensure_bm25s_index(catalog, replace(config, rebuild=True))
        return cls(folder / BM25S_SUBDIR, catalog.by_asin.keys())

    def num_docs(self) -> int:
        return len(self._doc_ids)

    def query_terms(self, query: str) -> dict[int, int]:
        """Vocabulary id -> occurrences of the query's terms, up to the 1,024th distinct term."""
        counts: dict[str, int] = {}
        for term in analyze(query):
            if term not in counts and len(counts) == MAX_QUERY_TERMS:
                break
            counts[term] = counts.get(term, 0) + 1
        return {self._vocab[t]: n for t, n in counts.items() if t in self._vocab}

    def scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(document indices matching the query, their float32 scores), unordered."""
        terms = self.query_terms(query)
        if not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        matrix = self._retriever.scores
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        docs = [indices[indptr[t] : indptr[t + 1]] for t in terms]
        weights = [data[indptr[t] : indptr[t + 1]].astype(np.float64) * n for t, n in terms.items()]
        # sum in double, round to float (as Lucene); only the postings of the query terms are touched
        matched, slot = np.unique(np.concatenate(docs), return_inverse=True)
        summed = np.bincount(slot, weights=np.concatenate(weights), minlength=len(matched))
        return matched, summed.astype(np.float32)

    def _search_ids(self, query: str, k: int) -> list[str]:
        docs, scores = self.scores(query)
        keep = scores > 0
        docs, scores = docs[keep], scores[keep]
        if len(docs) > k:
            # keep every document scoring at least the k-th best, so ties at the cut are broken by id
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            docs, scores = docs[keep], scores[keep]
        order = np.lexsort((self._id_rank[docs], -scores))
        return list(self._doc_ids[docs[order[:k]]])
