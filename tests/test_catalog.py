"""Catalog loading (WEBSHOP_SPEC §1.2): the real 1k catalog, normalisation rules, parity with the
products WebShop's own loader built (reference cases), seeded prices, and bad input files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from webshop_trl.data import load_catalog
from webshop_trl.data.catalog import (
    ATTRIBUTE_FILE_DEFAULT,
    HUMAN_INSTRUCTION_FILE_DEFAULT,
    PRODUCT_FILE_DEFAULT,
    normalize_options,
    parse_pricing,
    price_tag,
)
from webshop_trl.errors import DataFileError

from fresh_process import run_fresh  # tests/ is on sys.path under pytest


def _raw_products(webshop_dir: Path) -> list[dict]:
    return json.loads((webshop_dir / PRODUCT_FILE_DEFAULT).read_text(encoding="utf-8"))


def _write(folder: Path, products, attributes=None, human=None) -> Path:
    """A small catalog folder with the default file names (products may be raw text)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = products if isinstance(products, str) else json.dumps(products)
    (folder / PRODUCT_FILE_DEFAULT).write_text(text, encoding="utf-8")
    (folder / ATTRIBUTE_FILE_DEFAULT).write_text(json.dumps(attributes or {}), encoding="utf-8")
    if human is not None:
        (folder / HUMAN_INSTRUCTION_FILE_DEFAULT).write_text(json.dumps(human), encoding="utf-8")
    return folder


def _product(asin: str, **fields) -> dict:
    base = {
        "asin": asin,
        "name": f"Product {asin}",
        "full_description": "desc",
        "small_description": ["bullet"],
        "images": ["https://img/1.jpg", "https://img/2.jpg"],
        "pricing": "$10.00",
        "customization_options": "",
        "category": "beauty",
        "query": "  Face Cream ",
        "product_category": "Beauty › Skin",
    }
    base.update(fields)
    return base


# --------------------------------------------------------------------------- the real 1k catalog


def test_real_catalog_size_and_order(catalog, webshop_dir):
    assert len(catalog) == 1000
    assert len(catalog.by_asin) == 1000
    # load order is the file order (PROVENANCE.md: the first four asins of items_shuffle_1000)
    assert [p.asin for p in catalog.products[:4]] == ["B06Y3VLDFB", "B08R3XSC65", "B09DG92LJL", "B07B6DVG41"]
    assert [p.asin for p in catalog.products] == [r["asin"] for r in _raw_products(webshop_dir)]


def test_real_price_range_parse_and_tag(catalog):
    product = catalog.get("B08ZRR3DZT")  # raw pricing "$19.99 - $27.99"
    assert product.pricing == [19.99, 27.99]
    assert product.price_tag == "$19.99 to $27.99"
    assert 19.99 <= product.reward_price <= 27.99


def test_real_missing_prices_become_100(catalog, webshop_dir):
    missing = {r["asin"] for r in _raw_products(webshop_dir) if not r.get("pricing")}
    assert len(missing) == 89  # PROVENANCE.md
    for asin in missing:
        product = catalog.get(asin)
        assert product.pricing == [100.0] and product.price_tag == "$100.0" and product.reward_price == 100.0


def test_real_options_normalised(catalog, webshop_dir):
    raw = {r["asin"]: r for r in _raw_products(webshop_dir)}
    product = catalog.get("B09M4C31FL")  # raw Size values like "0.53oz/15g x 10"
    assert "0.53oz | 15g x 10" in product.options["size"]
    for p in catalog.products:
        raw_options = raw[p.asin]["customization_options"] or {}
        assert list(p.options) == [k.lower() for k, v in raw_options.items() if v is not None]
        for name, values in p.options.items():
            assert name == name.lower()
            assert all(v == v.lower() and "/" not in v and v == v.strip() for v in values)


def test_real_bullet_strings_wrapped_in_a_list(catalog, webshop_dir):
    as_string = [r for r in _raw_products(webshop_dir) if isinstance(r.get("small_description"), str)]
    assert len(as_string) == 16
    for r in as_string:
        assert catalog.get(r["asin"]).bullet_points == [r["small_description"]]
    assert all(isinstance(p.bullet_points, list) for p in catalog.products)


def test_real_fields_mapped(catalog, webshop_dir):
    for r in _raw_products(webshop_dir)[:50]:
        p = catalog.get(r["asin"])
        assert p.title == p.name == r["name"]
        assert p.description == r["full_description"]
        assert p.main_image == r["images"][0]
        assert p.query == r["query"].lower().strip()
        assert p.category == r["category"] and p.product_category == r["product_category"]


def test_real_attributes_from_items_ins(catalog, webshop_dir):
    ins = json.loads((webshop_dir / ATTRIBUTE_FILE_DEFAULT).read_text())
    for p in catalog.products:
        assert p.attributes == ins[p.asin]["attributes"]
        assert p.instruction_text == ins[p.asin].get("instruction")
    # WebShop keeps an empty list as it is; DUMMY_ATTR is only for a missing record
    assert sum(p.attributes == [] for p in catalog.products) == 185
    assert not any(p.attributes == ["DUMMY_ATTR"] for p in catalog.products)


def test_real_human_instructions_attached(catalog):
    with_human = [p for p in catalog.products if p.human_instructions]
    assert len(with_human) == 13
    assert all(len(p.human_instructions) == 1 for p in with_human)


@pytest.mark.shared
def test_products_match_webshop_loader(catalog, shared_dir):
    """Fields the reward reads equal the product dicts WebShop's load_products() built."""
    cases = json.loads((shared_dir / "reference" / "reward_cases_dev.json").read_text())["cases"]
    checked = set()
    for case in cases:
        ref, p = case["purchased_product"], catalog.get(case["purchased_asin"])
        assert p.pricing == ref["pricing"], p.asin
        assert p.attributes == ref["Attributes"], p.asin
        assert (p.name, p.query, p.category, p.product_category) == (
            ref["name"],
            ref["query"],
            ref["category"],
            ref["product_category"],
        )
        if len(p.pricing) == 1:  # a range's draw is unseeded in WebShop, so only fixed prices compare
            assert p.reward_price == case["price"]
        else:
            assert min(p.pricing) <= case["price"] <= max(p.pricing)
        checked.add(p.asin)
    assert len(checked) > 400


# --------------------------------------------------------------------------- seeded reward prices


def _price_digest(catalog) -> str:
    return hashlib.sha256(json.dumps([(p.asin, p.reward_price) for p in catalog.products]).encode()).hexdigest()


def test_reward_prices_same_across_loads_and_processes(catalog, webshop_dir):
    again = load_catalog(webshop_dir)
    assert [p.reward_price for p in again.products] == [p.reward_price for p in catalog.products]
    code = (
        "import hashlib, json, sys\n"
        "from webshop_trl.data import load_catalog\n"
        "c = load_catalog(sys.argv[1])\n"
        "print(hashlib.sha256(json.dumps([(p.asin, p.reward_price) for p in c.products]).encode()).hexdigest())\n"
    )
    assert run_fresh(code, str(webshop_dir), hash_seed="12345") == _price_digest(catalog)


def test_price_seed_changes_only_ranges(catalog, webshop_dir):
    other = load_catalog(webshop_dir, price_seed=1)
    changed = ranges = 0
    for a, b in zip(catalog.products, other.products):
        if len(a.pricing) == 1:
            assert a.reward_price == b.reward_price
        else:
            ranges += 1
            changed += a.reward_price != b.reward_price
            assert min(b.pricing) <= b.reward_price <= max(b.pricing)
    assert ranges == 93 and changed == ranges


# --------------------------------------------------------------------------- normalisation units


@pytest.mark.parametrize(
    "raw, pricing, tag",
    [
        ("$19.99 - $27.99", [19.99, 27.99], "$19.99 to $27.99"),
        ("$10.00", [10.0], "$10.0"),
        ("$1,299.00", [1299.0], "$1299.0"),
        ("$1 - $2 - $3", [1.0, 2.0], "$1.0 to $2.0"),
        ("", [100.0], "$100.0"),
        (None, [100.0], "$100.0"),
        ("$", [100.0], "$100.0"),
        (12.5, [12.5], "$12.5"),
    ],
)
def test_parse_pricing(raw, pricing, tag):
    assert parse_pricing(raw) == pricing
    assert price_tag(parse_pricing(raw)) == tag


def test_normalize_options():
    options, images = normalize_options(
        {
            "Color": [{"value": " Black/White ", "image": "u1"}, {"value": "RED", "image": None}],
            "Size": None,
            "Fit Type": [{"value": "Men/Women/Youth"}],
        }
    )
    assert options == {"color": ["black | white", "red"], "fit type": ["men | women | youth"]}
    assert images == {"black | white": "u1", "red": None, "men | women | youth": None}
    assert normalize_options("") == ({}, {})
    assert normalize_options(None) == ({}, {})


def test_small_catalog_rules(tmp_path):
    folder = _write(
        tmp_path,
        [
            _product("B000000001", small_description="one string", pricing="$19.99 - $27.99"),
            _product("B000000002", pricing="", images=[]),
            _product("B000000001", name="a duplicate: the first one wins"),
            _product("nan"),
            _product("B0000000011"),  # 11 characters: skipped like WebShop
            _product("B000000003", customization_options={"Color": [{"value": "Navy/Blue", "image": "x"}]}),
        ],
        attributes={"B000000001": {"attributes": ["vegan"], "instruction": "i want vegan", "instruction_attributes": ["vegan"]}},
    )
    cat = load_catalog(folder)
    assert [p.asin for p in cat.products] == ["B000000001", "B000000002", "B000000003"]
    first, second, third = cat.products
    assert first.title == "Product B000000001"
    assert first.bullet_points == ["one string"]
    assert first.pricing == [19.99, 27.99] and first.price_tag == "$19.99 to $27.99"
    assert first.attributes == ["vegan"] and first.instruction_text == "i want vegan"
    assert first.query == "face cream"
    assert second.pricing == [100.0] and second.main_image is None
    assert second.attributes == ["DUMMY_ATTR"] and second.instruction_text is None
    assert third.options == {"color": ["navy | blue"]}
    assert "b000000001" in cat and cat.get("b000000001") is first
    with pytest.raises(KeyError, match="unknown ASIN 'B999999999'"):
        cat.get("B999999999")
    assert load_catalog(folder, limit=2).products[-1].asin == "B000000002"
    assert load_catalog(folder).fingerprint() == cat.fingerprint()


# --------------------------------------------------------------------------- bad input


def _record_starts(text: str) -> list[int]:
    """Byte offsets where each top-level record of a JSON list starts (independent of ijson)."""
    decoder = json.JSONDecoder()
    starts, pos = [], text.index("[") + 1
    while True:
        while text[pos] in " \n\r\t,":
            pos += 1
        if text[pos] == "]":
            return starts
        starts.append(pos)
        _, pos = decoder.raw_decode(text, pos)


def test_truncated_real_product_file(webshop_dir, tmp_path):
    text = (webshop_dir / PRODUCT_FILE_DEFAULT).read_text(encoding="utf-8")
    starts = _record_starts(text)
    assert len(starts) == 1000
    cut = (starts[600] + starts[601]) // 2  # in the middle of record 600
    folder = tmp_path / "cut"
    folder.mkdir()
    for name in (ATTRIBUTE_FILE_DEFAULT, HUMAN_INSTRUCTION_FILE_DEFAULT):
        (folder / name).write_bytes((webshop_dir / name).read_bytes())
    broken = folder / PRODUCT_FILE_DEFAULT
    broken.write_text(text[:cut], encoding="utf-8")
    before = broken.read_bytes()
    with pytest.raises(DataFileError) as info:
        load_catalog(folder)
    message = str(info.value)
    assert str(broken) in message
    assert "after record 599 (record 600 could not be read)" in message
    assert broken.read_bytes() == before  # loading never writes to its inputs


@pytest.mark.parametrize(
    "content, expected",
    [
        ("this is not json", "expected a JSON list at the top level, found text starting with b'this is not json'"),
        ("[this is not json", "at record 0 (no record could be read)"),
        ("", "the file is empty, expected a JSON list"),
        ('{"B000000001": {}}', "expected a JSON list at the top level, found a JSON object"),
        ('[{"asin": "B000000001"}, ', "after record 0 (record 1 could not be read)"),
        ('[{"asin": "B000000001"}, {"name": "no asin"}]', "record 1 has no string 'asin' field"),
        ('[{"asin": 12345}]', "record 0 has no string 'asin' field"),
        ('[{"asin": "B000000001"}, ["a", "list"]]', "record 1 is a list, expected an object"),
        ('[{"asin": "B000000001"}, "text"]', "record 1 is a str, expected an object"),
        (
            '[{"asin": "B000000001", "customization_options": ["red"]}]',
            "record 0 (asin B000000001) is malformed: customization_options is a list",
        ),
        (
            '[{"asin": "B000000001", "customization_options": {"Color": ["red"]}}]',
            "record 0 (asin B000000001) is malformed",
        ),
    ],
)
def test_bad_product_file(tmp_path, content, expected):
    folder = _write(tmp_path, content)
    with pytest.raises(DataFileError, match=re.escape(expected)) as info:
        load_catalog(folder)
    assert str(folder / PRODUCT_FILE_DEFAULT) in str(info.value)


def test_missing_product_file(tmp_path):
    with pytest.raises(DataFileError) as info:
        load_catalog(tmp_path, attribute_file=_write(tmp_path / "x", []) / ATTRIBUTE_FILE_DEFAULT)
    message = str(info.value)
    assert f"product file not found: {tmp_path / PRODUCT_FILE_DEFAULT}" in message
    assert "webshop-trl data fetch" in message


def test_missing_attribute_file(tmp_path):
    (tmp_path / PRODUCT_FILE_DEFAULT).write_text("[]")
    with pytest.raises(DataFileError, match=f"attribute file not found: {tmp_path / ATTRIBUTE_FILE_DEFAULT}"):
        load_catalog(tmp_path)


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"B000000001": {"attributes": []}, "B000000002": ', "after key 'B000000001'"),
        ('{"B000000001": ["not", "an", "object"]}', "record 'B000000001' is a list, expected an object"),
        ("[]", "expected a JSON object at the top level, found a JSON list"),
        ("nope", "expected a JSON object at the top level, found text starting with b'nope'"),
        ("{nope", "malformed or truncated JSON at the start"),
    ],
)
def test_bad_attribute_file(tmp_path, content, expected):
    folder = _write(tmp_path, [_product("B000000001")])
    (folder / ATTRIBUTE_FILE_DEFAULT).write_text(content)
    with pytest.raises(DataFileError, match=re.escape(expected)) as info:
        load_catalog(folder)
    assert str(folder / ATTRIBUTE_FILE_DEFAULT) in str(info.value)


def test_bad_human_instruction_file(tmp_path):
    folder = _write(tmp_path, [_product("B000000001")], human={"B000000001": {"instruction": "not a list"}})
    with pytest.raises(DataFileError, match="record 'B000000001' must be a list of objects"):
        load_catalog(folder)
    # an explicit empty string skips human instructions altogether
    assert load_catalog(folder, human_instruction_file="").products[0].human_instructions is None
