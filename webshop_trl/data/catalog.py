"""Load WebShop-format product files into normalised `Product` records (WEBSHOP_SPEC §1.2).

The full catalog is 5.2 GB of JSON. Files are parsed with ijson, one record at a time, so the raw
text and a parsed list are never in memory together: only the normalised products are kept.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import ijson

from webshop_trl.errors import DataFileError

PRODUCT_FILE_DEFAULT = "items_shuffle_1000.reconstructed.json"
ATTRIBUTE_FILE_DEFAULT = "items_ins_v2_1000.json"
HUMAN_INSTRUCTION_FILE_DEFAULT = "items_human_ins.subset_1000.json"

MISSING_PRICE = 100.0  # what WebShop substitutes when a product has no price
_PRICE_JUNK = re.compile(r"[^\d.]")


@dataclass(slots=True)
class Product:
    """One catalog product after WebShop's load-time normalisation.

    Field names follow WebShop's keys in snake case (``Title`` -> ``title``). ``reward_price`` is
    the single price the reward compares with the goal's upper bound: for a price range WebShop
    draws it uniformly at load time without a seed; we draw it from a seed and the ASIN, so it is
    the same on every run and machine.
    """

    asin: str
    title: str
    description: str
    bullet_points: list[str]
    main_image: str | None
    pricing: list[float]
    price_tag: str
    reward_price: float
    options: dict[str, list[str]]
    option_to_image: dict[str, str | None]
    attributes: list[str]
    category: str
    query: str
    product_category: str
    # goal inputs: synthetic (items_ins_v2) and human (items_human_ins)
    instruction_text: str | None = None
    instruction_attributes: list[str] | None = None
    human_instructions: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:  # WebShop keeps both ``name`` and ``Title``
        return self.title


def parse_pricing(raw: Any) -> list[float]:
    """WebShop's price parse: split on '$', keep digits and '.', at most two values; [100.0] if none."""
    if isinstance(raw, (int, float)):
        return [float(raw)]
    if isinstance(raw, list):  # already parsed (e.g. a documents.jsonl product)
        vals = [float(v) for v in raw if isinstance(v, (int, float))]
        return vals[:2] or [MISSING_PRICE]
    values: list[float] = []
    for piece in str(raw or "").split("$"):
        piece = _PRICE_JUNK.sub("", piece)
        if not piece:
            continue
        try:
            values.append(float(piece))
        except ValueError:
            continue
    return values[:2] or [MISSING_PRICE]


def price_tag(pricing: list[float]) -> str:
    """The displayed price: "$v" or "$lo to $hi", with Python's float formatting ("$10.0")."""
    if len(pricing) == 1:
        return f"${pricing[0]}"
    return f"${pricing[0]} to ${pricing[1]}"


def draw_reward_price(pricing: list[float], asin: str, seed: int) -> float:
    """A single price for the reward; a range gets a uniform draw seeded by (seed, asin)."""
    if len(pricing) == 1:
        return pricing[0]
    rng = random.Random(f"{seed}:{asin}")
    return rng.uniform(pricing[0], pricing[1])


def normalize_options(raw: Any) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Option names lowercased; values stripped, '/' -> ' | ', lowercased; None groups skipped."""
    options: dict[str, list[str]] = {}
    images: dict[str, str | None] = {}
    if not raw:  # the scraped files use "" (or null) for "no options"
        return options, images
    if not isinstance(raw, dict):  # silently dropping them would lose the product's options
        raise TypeError(f"customization_options is a {type(raw).__name__}, expected an object")
    for name, contents in raw.items():
        if contents is None:
            continue
        key = str(name).lower()
        for entry in contents:
            value = str(entry.get("value", "")).strip().replace("/", " | ").lower()
            options.setdefault(key, []).append(value)
            images[value] = entry.get("image")
    return options, images


_JSON_WHITESPACE = b" \t\r\n"
_UTF8_BOM = b"\xef\xbb\xbf"


def _expect_top_level(fh: BinaryIO, path: Path, opener: bytes, what: str) -> None:
    """Fail unless the file's first JSON token is ``opener``, then rewind.

    ijson's ``items(fh, "item")`` and ``kvitems(fh, "")`` silently yield nothing when the top
    level has the other shape (an object where a list is expected, or the reverse), so a wrong
    file would load as an empty catalog instead of raising.
    """
    head = b""
    while True:
        chunk = fh.read(4096)
        if not chunk:
            break
        head = (head + chunk).lstrip(_JSON_WHITESPACE)
        if head.startswith(_UTF8_BOM):
            head = head[len(_UTF8_BOM):].lstrip(_JSON_WHITESPACE)
        if head:
            break
    fh.seek(0)
    if not head:
        raise DataFileError(f"{path}: the file is empty, expected a JSON {what}")
    first = head[:1]
    if first != opener:
        found = {b"[": "a JSON list", b"{": "a JSON object"}.get(first, f"text starting with {head[:20]!r}")
        raise DataFileError(f"{path}: expected a JSON {what} at the top level, found {found}")


def _iter_json_list(path: Path) -> Iterator[tuple[int, Any]]:
    """Stream the records of a top-level JSON list, naming file and record on a parse error."""
    index = -1
    try:
        with open(path, "rb") as fh:
            _expect_top_level(fh, path, b"[", "list")
            for index, item in enumerate(ijson.items(fh, "item", use_float=True)):
                yield index, item
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as exc:
        where = (
            f"after record {index} (record {index + 1} could not be read)"
            if index >= 0
            else "at record 0 (no record could be read)"
        )
        raise DataFileError(f"{path}: malformed or truncated JSON {where}: {exc}") from exc


def _iter_json_dict(path: Path) -> Iterator[tuple[str, Any]]:
    """Stream the (key, value) pairs of a top-level JSON object."""
    last = None
    try:
        with open(path, "rb") as fh:
            _expect_top_level(fh, path, b"{", "object")
            for key, value in ijson.kvitems(fh, "", use_float=True):
                last = key
                yield key, value
    except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as exc:
        where = f"after key {last!r}" if last is not None else "at the start"
        raise DataFileError(f"{path}: malformed or truncated JSON {where}: {exc}") from exc


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFileError(
            f"{what} not found: {path}. Run `webshop-trl data fetch` (or name the file explicitly)."
        )
    return path


def load_attribute_file(path: Path) -> dict[str, dict[str, Any]]:
    """items_ins_v2*.json: ASIN -> {attributes, instruction, instruction_attributes}."""
    out: dict[str, dict[str, Any]] = {}
    for asin, record in _iter_json_dict(_require_file(path, "attribute file")):
        if not isinstance(record, dict):
            raise DataFileError(f"{path}: record {asin!r} is a {type(record).__name__}, expected an object")
        out[asin] = record
    return out


def load_human_instruction_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    """items_human_ins*.json: ASIN -> list of human-instruction records."""
    out: dict[str, list[dict[str, Any]]] = {}
    for asin, records in _iter_json_dict(_require_file(path, "human instruction file")):
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataFileError(f"{path}: record {asin!r} must be a list of objects")
        out[asin] = records
    return out


def _hidden_attributes(ins: dict[str, Any]) -> list[str]:
    """items_ins_v2 ``attributes``; ["DUMMY_ATTR"] only when the record or the key is missing.

    An empty list stays empty, as in WebShop (185 of the 1k products have one); turning it into
    DUMMY_ATTR would change what the reward's attribute match sees.
    """
    attrs = ins.get("attributes")
    if attrs is None:
        return ["DUMMY_ATTR"]
    return [str(a) for a in attrs]


def normalize_product(
    raw: dict[str, Any],
    attributes: dict[str, dict[str, Any]],
    human: dict[str, list[dict[str, Any]]] | None,
    price_seed: int,
) -> Product:
    """Turn one raw product dict into a `Product` (spec §1.2, steps 2-8)."""
    asin = raw["asin"]
    bullets = raw.get("small_description") or []
    if isinstance(bullets, str):
        bullets = [bullets]
    images = raw.get("images") or []
    pricing = parse_pricing(raw.get("pricing"))
    options, option_to_image = normalize_options(raw.get("customization_options"))
    ins = attributes.get(asin, {})
    product = Product(
        asin=asin,
        title=raw.get("name") or "",
        description=raw.get("full_description") or "",
        bullet_points=[str(b) for b in bullets],
        main_image=images[0] if images else None,
        pricing=pricing,
        price_tag=price_tag(pricing),
        reward_price=draw_reward_price(pricing, asin, price_seed),
        options=options,
        option_to_image=option_to_image,
        attributes=_hidden_attributes(ins),
        category=raw.get("category") or "",
        query=(raw.get("query") or "").lower().strip(),
        product_category=raw.get("product_category") or "",
        instruction_text=ins.get("instruction"),
        instruction_attributes=ins.get("instruction_attributes"),
        human_instructions=human.get(asin) if human else None,
    )
    return product


@dataclass
class Catalog:
    """The loaded products, by load order and by ASIN, plus where they came from."""

    products: list[Product]
    source_files: dict[str, str]
    price_seed: int

    def __post_init__(self) -> None:
        self.by_asin: dict[str, Product] = {p.asin: p for p in self.products}

    def __len__(self) -> int:
        return len(self.products)

    def __contains__(self, asin: str) -> bool:
        return asin.upper() in self.by_asin

    def get(self, asin: str) -> Product:
        try:
            return self.by_asin[asin.upper()]
        except KeyError:
            raise KeyError(f"unknown ASIN {asin!r}: not in this catalog of {len(self)} products") from None

    def fingerprint(self) -> str:
        """A short hash of the ASIN list: indexes built for one catalog are not reused for another."""
        h = hashlib.sha256()
        for p in self.products:
            h.update(p.asin.encode())
            h.update(b"\n")
        return h.hexdigest()[:16]


def load_catalog(
    data_dir: str | Path | None = None,
    product_file: str | Path | None = None,
    attribute_file: str | Path | None = None,
    human_instruction_file: str | Path | None = None,
    limit: int | None = None,
    price_seed: int = 0,
) -> Catalog:
    """Load and normalise a WebShop catalog.

    Files default to the 1k-product files inside ``data_dir`` (the fetched data folder). Pass
    ``human_instruction_file=False``-ish (an empty string) to skip human instructions. ``limit``
    keeps the first N products, as WebShop's ``num_products`` does.
    """
    from webshop_trl import paths

    base = Path(data_dir) if data_dir is not None else paths.webshop_data_dir()
    product_path = Path(product_file) if product_file else base / PRODUCT_FILE_DEFAULT
    attribute_path = Path(attribute_file) if attribute_file else base / ATTRIBUTE_FILE_DEFAULT
    if human_instruction_file == "":
        human_path = None
    else:
        human_path = Path(human_instruction_file) if human_instruction_file else base / HUMAN_INSTRUCTION_FILE_DEFAULT
        if human_instruction_file is None and not human_path.is_file():
            human_path = None

    attributes = load_attribute_file(attribute_path)
    human = load_human_instruction_file(human_path) if human_path else None

    products: list[Product] = []
    seen: set[str] = set()
    for index, raw in _iter_json_list(_require_file(product_path, "product file")):
        if limit is not None and len(products) >= limit:
            break
        if not isinstance(raw, dict):
            raise DataFileError(f"{product_path}: record {index} is a {type(raw).__name__}, expected an object")
        asin = raw.get("asin")
        if not isinstance(asin, str):
            raise DataFileError(f"{product_path}: record {index} has no string 'asin' field")
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        try:
            products.append(normalize_product(raw, attributes, human, price_seed))
        except (TypeError, AttributeError, ValueError) as exc:
            raise DataFileError(f"{product_path}: record {index} (asin {asin}) is malformed: {exc}") from exc
    files = {"products": str(product_path), "attributes": str(attribute_path)}
    if human_path:
        files["human_instructions"] = str(human_path)
    return Catalog(products=products, source_files=files, price_seed=price_seed)
