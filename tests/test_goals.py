"""Goals (WEBSHOP_SPEC §2): counts, order parity with WebShop's goal list, seeded price bounds,
weights, splits and goal-index errors."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from webshop_trl.data import build_goals, load_catalog
from webshop_trl.data.catalog import ATTRIBUTE_FILE_DEFAULT, HUMAN_INSTRUCTION_FILE_DEFAULT, PRODUCT_FILE_DEFAULT
from webshop_trl.data.goals import NO_PRICE_LIMIT, PRICE_GRID
from webshop_trl.errors import UnknownGoalError

from fresh_process import run_fresh  # tests/ is on sys.path under pytest

PRICE_CLAUSE = re.compile(r", and price lower than (\d+\.\d\d) dollars$")


def _without_price(text: str) -> str:
    return PRICE_CLAUSE.sub("", text)


@pytest.fixture(scope="module")
def reference_cases(shared_dir):
    return json.loads((shared_dir / "reference" / "reward_cases_dev.json").read_text())["cases"]


# --------------------------------------------------------------------------- counts and order


def test_goal_counts(goals, human_goals):
    assert len(goals) == 6910  # the WebShop README's count for the 1k catalog
    assert len(human_goals) == 13
    assert human_goals.skipped == 0
    assert [g.index for g in goals] == list(range(6910))
    assert {g.kind for g in goals} == {"synthetic"} and {g.kind for g in human_goals} == {"human"}


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["synthetic", "human"])
def test_goal_order_matches_webshop(goals, human_goals, reference_cases, kind):
    """Goal i is WebShop's goal i: same product, attributes, options and weight. Prices differ by
    design (WebShop draws them unseeded), so the text is compared without the price clause."""
    goal_set = goals if kind == "synthetic" else human_goals
    cases = [c for c in reference_cases if c["goal_set"] == kind]
    assert len(cases) == (1000 if kind == "synthetic" else 150)
    for case in cases:
        ref, ours = case["goal"], goal_set[case["goal_index"]]
        where = f"{case['case_id']} (goal {case['goal_index']})"
        assert ours.asin == ref["asin"], where
        assert ours.attributes == ref["attributes"], where
        assert ours.goal_options == ref["goal_options"], where
        assert ours.weight == pytest.approx(ref["weight"], abs=1e-12), where
        assert _without_price(ours.instruction_text) == _without_price(ref["instruction_text"]), where
        for key in ("query", "category", "product_category", "name"):
            assert getattr(ours, key) == ref[key], (where, key)
    assert len({c["goal_index"] for c in cases}) > (500 if kind == "synthetic" else 12)


@pytest.mark.shared
def test_one_price_bound_per_product_like_webshop(goals, reference_cases):
    """WebShop draws one bound per product for all its option combinations."""
    ref_bounds = defaultdict(set)
    for case in reference_cases:
        if case["goal_set"] == "synthetic":
            ref_bounds[case["goal"]["asin"]].add(case["goal"]["price_upper"])
    assert all(len(v) == 1 for v in ref_bounds.values())
    ours = defaultdict(set)
    for g in goals:
        ours[g.asin].add(g.price_upper)
    assert all(len(v) == 1 for v in ours.values())


# --------------------------------------------------------------------------- price bounds


def test_price_bound_rule(goals, human_goals, catalog):
    steps_per_product: dict[str, int] = {}
    for g in [*goals, *human_goals]:
        price = catalog.get(g.asin).reward_price
        above = [p for p in PRICE_GRID if p > price][:4]
        clause = PRICE_CLAUSE.search(g.instruction_text)
        if len(above) < 2:
            assert g.price_upper == NO_PRICE_LIMIT and clause is None
            continue
        assert g.price_upper in above[1:], (g.index, price, g.price_upper)
        assert clause is not None and float(clause.group(1)) == g.price_upper
        assert clause.group(1) == f"{g.price_upper:.2f}"
        if len(above) == 4 and g.kind == "synthetic":
            steps_per_product[g.asin] = above.index(g.price_upper) + 1
    # the larger of two draws from 4 steps: 2nd/3rd/4th with probability 1/6, 2/6, 3/6 (one draw
    # per product, so count products, not goals)
    steps = Counter(steps_per_product.values())
    n = sum(steps.values())
    assert n > 350
    for step, p in ((2, 1 / 6), (3, 2 / 6), (4, 3 / 6)):
        assert abs(steps[step] / n - p) < 0.07, steps


def test_goals_reproducible_across_builds_and_processes(goals, webshop_dir):
    again = build_goals(load_catalog(webshop_dir), "synthetic")
    assert [g.to_dict() for g in again] == [g.to_dict() for g in goals]
    digest = hashlib.sha256(json.dumps([g.to_dict() for g in goals]).encode()).hexdigest()
    code = (
        "import hashlib, json, sys\n"
        "from webshop_trl.data import build_goals, load_catalog\n"
        "goals = build_goals(load_catalog(sys.argv[1]), 'synthetic')\n"
        "print(hashlib.sha256(json.dumps([g.to_dict() for g in goals]).encode()).hexdigest())\n"
    )
    assert run_fresh(code, str(webshop_dir), hash_seed="999") == digest


def test_seed_changes_prices_not_order(goals, catalog):
    other = build_goals(catalog, "synthetic", seed=7)
    assert [(g.asin, g.goal_options) for g in other] == [(g.asin, g.goal_options) for g in goals]
    assert sum(a.price_upper != b.price_upper for a, b in zip(goals, other)) > 1000


# --------------------------------------------------------------------------- weights and sampling


def test_weights(goals, human_goals):
    counts = Counter(a for g in goals for a in g.attributes)
    for g in goals:
        expected = sum(1 / counts[a] for a in g.attributes) / len(g.attributes)
        assert g.weight == pytest.approx(expected, rel=1e-12)
    assert all(g.weight == 1 for g in human_goals)


def test_sample_index_is_weighted_and_seeded(goals):
    draws = [goals.sample_index(random.Random(5)) for _ in range(3)]
    assert len(set(draws)) == 1
    rng = random.Random(0)
    assert all(0 <= goals.sample_index(rng) < len(goals) for _ in range(100))
    test = goals.split("test")
    assert all(goals.sample_index(rng, test) in test for _ in range(100))


# --------------------------------------------------------------------------- splits


def test_index_split(goals):
    sizes = {name: len(goals.split(name)) for name in ("test", "eval", "train")}
    assert sizes == {"test": 500, "eval": 1000, "train": 5410}
    assert goals.split("test") == list(range(500))
    assert goals.split("eval") == list(range(500, 1500))
    assert goals.split("train") == list(range(1500, 6910))


def test_product_split_has_no_shared_products(goals):
    split = {name: goals.split(name, mode="product") for name in ("test", "eval", "train")}
    all_indices = sorted(i for ids in split.values() for i in ids)
    assert all_indices == list(range(len(goals)))
    asins = {name: {goals[i].asin for i in ids} for name, ids in split.items()}
    assert not asins["test"] & asins["eval"]
    assert not asins["test"] & asins["train"]
    assert not asins["eval"] & asins["train"]
    # products are dealt until a split reaches its target, so it overshoots by less than one product
    largest = max(Counter(g.asin for g in goals).values())
    assert 500 <= len(split["test"]) < 500 + largest
    assert 1000 <= len(split["eval"]) < 1000 + largest
    assert split == {name: goals.split(name, mode="product") for name in split}  # cached, stable


def test_human_splits(human_goals):
    assert human_goals.split("test") == list(range(13))
    assert human_goals.split("eval") == [] and human_goals.split("train") == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("index", [-1, 6910, "3", True, 1.5, None])
def test_unknown_goal_index(goals, index):
    with pytest.raises(UnknownGoalError, match=re.escape(f"unknown goal index {index!r}")) as info:
        goals[index]
    assert "0..6909" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_numpy_goal_index(goals):
    assert goals[np.int64(42)] is goals[42]


@pytest.mark.parametrize("name", ["dev", "Test", "", "validation"])
def test_unknown_split_name(goals, name):
    with pytest.raises(UnknownGoalError, match=re.escape(f"unknown split {name!r}: choose one of test, eval, train")):
        goals.split(name)


def test_unknown_split_mode_and_kind(goals, catalog):
    with pytest.raises(ValueError, match="unknown split mode 'asin'"):
        goals.split("test", mode="asin")
    with pytest.raises(ValueError, match="unknown goal kind 'paper'"):
        build_goals(catalog, "paper")


# --------------------------------------------------------------------------- small synthetic catalog


def test_goal_text_and_options_on_a_small_catalog(tmp_path):
    products = [
        {
            "asin": "B000000001",
            "name": "Shirt",
            "pricing": "$15.00",
            "customization_options": {
                "Size": [{"value": "M"}, {"value": "L"}],
                "Color": [{"value": "Black/White"}],
            },
            "query": "Shirts",
            "category": "fashion",
            "product_category": "Clothing",
        },
        {"asin": "B000000002", "name": "Piano", "pricing": "$995.00", "query": "piano"},
    ]
    attributes = {
        "B000000001": {"attributes": ["cotton"], "instruction": "i need a cotton shirt", "instruction_attributes": ["cotton"]},
        "B000000002": {"attributes": [], "instruction": "i want a piano", "instruction_attributes": ["grand"]},
    }
    human = {
        "B000000001": [
            {"instruction": "a cotton shirt please.", "instruction_attributes": ["cotton"], "instruction_options": ["m"]},
            {"instruction": "no attributes", "instruction_attributes": [], "instruction_options": []},
        ]
    }
    (tmp_path / PRODUCT_FILE_DEFAULT).write_text(json.dumps(products))
    (tmp_path / ATTRIBUTE_FILE_DEFAULT).write_text(json.dumps(attributes))
    (tmp_path / HUMAN_INSTRUCTION_FILE_DEFAULT).write_text(json.dumps(human))
    catalog = load_catalog(tmp_path)

    synthetic = build_goals(catalog, "synthetic")
    texts = sorted(_without_price(g.instruction_text) for g in synthetic)
    assert texts == [
        "i need a cotton shirt with color: black | white, and size: l",
        "i need a cotton shirt with color: black | white, and size: m",
        "i want a piano",
    ]
    shirt = [g for g in synthetic if g.asin == "B000000001"]
    assert {g.price_upper for g in shirt} <= {30.0, 40.0, 50.0} and len({g.price_upper for g in shirt}) == 1
    assert all(list(g.goal_options) == ["color", "size"] for g in shirt)
    piano = next(g for g in synthetic if g.asin == "B000000002")
    assert piano.price_upper == NO_PRICE_LIMIT and piano.instruction_text == "i want a piano"
    assert piano.goal_options == {} and piano.query == "piano"

    humans = build_goals(catalog, "human")
    assert len(humans) == 1 and humans.skipped == 1
    goal = humans[0]
    assert _without_price(goal.instruction_text) == "a cotton shirt please"
    assert goal.goal_options == ["m"] and goal.option_values == ["m"] and goal.weight == 1
