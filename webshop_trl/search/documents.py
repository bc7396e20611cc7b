"""The text WebShop indexes for a product (WEBSHOP_SPEC §1.3), and the files an index is built from.

WebShop's search never sees a product's full record: each product becomes one document whose
``contents`` is the lowercased join of Title, Description, the *first* bullet point only, and an
option string. Rankings depend on exactly this text (its length enters BM25's length norm), so it is
rebuilt here byte for byte; ``tests/test_search.py`` checks it against WebShop's own 1k documents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

from webshop_trl.data.catalog import Catalog, Product


def option_string(options: dict[str, list[str]]) -> str:
    """``"size: s, m, l, and color: red, blue"``: values joined by ", ", groups by ", and "."""
    return ", and ".join(f"{name}: {', '.join(values)}" for name, values in options.items())


def product_document(product: Product) -> str:
    """The index text of one product, exactly as WebShop builds it.

    Four parts joined by single spaces, then lowercased: Title, Description, the first bullet point
    (an empty string when there is none) and `option_string`. Empty parts still contribute their
    separator, which is why many WebShop documents end in two spaces.
    """
    first_bullet = product.bullet_points[0] if product.bullet_points else ""
    parts = [product.title, product.description, first_bullet, option_string(product.options)]
    return " ".join(parts).lower()


def iter_documents(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """(ASIN, index text) for every product, in catalog order."""
    for product in catalog.products:
        yield product.asin, product_document(product)


def documents_digest(documents: Iterable[tuple[str, str]]) -> str:
    """A hash of the exact documents: a cached index is rebuilt when the text it was built from changes
    (the catalog fingerprint covers only the ASIN list)."""
    h = hashlib.sha256()
    for doc_id, text in documents:
        h.update(doc_id.encode())
        h.update(b"\0")
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def write_json_collection(
    documents: Iterable[tuple[str, str]], folder: Path, docs_per_file: int = 100_000
) -> int:
    """Write Anserini's JsonCollection layout: JSON-lines files of ``{"id", "contents"}``.

    Several files let a multi-threaded indexer work in parallel (one thread per file). Returns the
    number of documents written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    fh = None
    try:
        for doc_id, text in documents:
            if count % docs_per_file == 0:
                if fh is not None:
                    fh.close()
                fh = open(folder / f"docs{count // docs_per_file:05d}.jsonl", "w", encoding="utf-8")
            fh.write(json.dumps({"id": doc_id, "contents": text}) + "\n")
            count += 1
    finally:
        if fh is not None:
            fh.close()
    return count
