"""The WebShop text environment on the real 1k catalog with real Lucene search."""

from __future__ import annotations

import random
import re

import gymnasium as gym
import pytest

from webshop_trl.envs import EpisodeOverError, WebShopConfig, WebShopEnv, WebShopVectorEnv
from webshop_trl.errors import InvalidActionError, UnknownGoalError
from webshop_trl.reward import get_reward

ASIN = re.compile(r"^b0[0-9a-z]{8}$")


@pytest.fixture(scope="module")
def env(webshop_dir):
    return WebShopEnv(WebShopConfig(data_dir=str(webshop_dir)))


def links(env):
    return [c for c in env.get_available_actions()["clickables"] if ASIN.match(c)]


def product_with_options(env, min_groups=2):
    """A goal index whose own product has >= min_groups option groups, and that product."""
    for g in env.goals:
        p = env.catalog.by_asin[g.asin]
        if len(p.options) >= min_groups:
            return g.index, p
    raise AssertionError("no such product")


def open_item(env, goal_index):
    """Search the goal's instruction and open the goal's own product (or the first hit)."""
    env.reset(options={"goal_index": goal_index})
    env.step(f"search[{env.goal.instruction_text}]")
    asin = env.goal.asin.lower()
    for _ in range(5):
        if asin in links(env):
            break
        env.step("click[next >]")
    target = asin if asin in links(env) else links(env)[0]
    return env.step(f"click[{target}]")


def test_search_page_observation(env):
    obs, info = env.reset(options={"goal_index": 0})
    assert obs == f"WebShop [SEP] Instruction: [SEP] {env.goal.instruction_text} [SEP] Search"
    assert info["page_type"] == "search"
    assert info["available_actions"] == ["search[<query>]"]
    assert env.get_available_actions() == {"has_search_bar": True, "clickables": ["search"]}


def test_results_pages(env):
    env.reset(options={"goal_index": 0})
    obs, reward, term, trunc, info = env.step(f"search[{env.goal.instruction_text}]")
    assert (reward, term, trunc) == (0.0, False, False)
    n = len(env.state.results)
    assert 0 < n <= 50
    first = env.state.results[0]
    product = env.catalog.by_asin[first]
    head = f"Instruction: [SEP] {env.goal.instruction_text} [SEP] Back to Search [SEP] Page 1 (Total results: {n}) [SEP] Next > [SEP] "
    assert obs.startswith(head + f"{first} [SEP] {product.title.strip()} [SEP] {product.price_tag}")
    assert len(links(env)) == min(10, n)
    assert env.get_available_actions()["clickables"][:2] == ["back to search", "next >"]
    obs2, *_ = env.step("click[next >]")
    assert "Page 2 (Total results" in obs2 and "[SEP] < Prev [SEP] Next > [SEP]" in obs2
    obs1, *_ = env.step("click[< prev]")
    assert obs1 == obs
    # next > is always offered, even past the last page, which is empty
    for _ in range(6):
        env.step("click[next >]")
    assert links(env) == [] and "next >" in env.get_available_actions()["clickables"]


def test_item_options_and_subpages(env):
    goal_index, _ = product_with_options(env)
    obs, *_ = open_item(env, goal_index)
    product = env.catalog.by_asin[env.state.asin]
    assert env.state.page.value == "item"
    clickables = env.get_available_actions()["clickables"]
    assert clickables[:6] == ["back to search", "< prev", "description", "features", "reviews", "buy now"]
    values = [v for vs in product.options.values() for v in vs]
    assert clickables[6:] == values
    assert f"[SEP] {product.title.strip()} [SEP] Price: {product.price_tag} [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now" in obs
    name, group = next(iter(product.options.items()))
    env.step(f"click[{group[-1]}]")
    assert env.state.options == {name: group[-1]}
    env.step(f"click[{group[0]}]")  # another value of the same group overwrites
    assert env.state.options == {name: group[0]}
    obs, *_ = env.step("click[features]")
    assert obs.endswith(" [SEP] ".join(["< Prev"] + [b.strip() for b in product.bullet_points if b.strip()]))
    env.step("click[< prev]")
    assert env.state.page.value == "item" and env.state.options == {name: group[0]}
    env.step("click[< prev]")  # back to results: product and options are dropped
    assert env.state.page.value == "results" and env.state.asin is None and env.state.options == {}


def test_text_rich_marks_selection_and_visits(webshop_dir):
    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich"))
    obs, _ = env.reset(options={"goal_index": 3})
    assert obs == f"WebShop\nInstruction: \n{env.goal.instruction_text}\n[button] Search [button_]\n"
    goal_index, _ = product_with_options(env)
    open_item(env, goal_index)
    product = env.catalog.by_asin[env.state.asin]
    value = next(iter(product.options.values()))[0]
    obs, *_ = env.step(f"click[{value}]")
    assert obs.startswith(f"You have clicked {value}.\n")
    assert f"  [clicked button] {value} [clicked button_]\n" in obs
    obs, *_ = env.step("click[< prev]")
    assert f"\n[clicked button] {product.asin} [clicked button_]\n" in obs


def test_buy_gives_webshop_reward(env):
    goal_index, _ = product_with_options(env)
    open_item(env, goal_index)
    goal = env.goal
    product = env.catalog.by_asin[env.state.asin]
    if isinstance(goal.goal_options, dict):
        for value in goal.goal_options.values():
            if f"click[{value}]" in env._info(True)["available_actions"]:
                env.step(f"click[{value}]")
    options = dict(env.state.options)
    obs, reward, term, trunc, info = env.step("click[buy now]")
    assert term and not trunc
    expected = get_reward(product, goal, product.reward_price, options)
    assert reward == pytest.approx(expected.total, abs=1e-12)
    assert info["reward_breakdown"]["r_type"] == expected.r_type
    assert info["purchased_asin"] == product.asin and info["selected_options"] == options
    assert info["available_actions"] == [] and "Thank you for shopping with us!" in obs
    with pytest.raises(EpisodeOverError):
        env.step("click[buy now]")


@pytest.mark.parametrize(
    "action",
    ["", "buy", "click[]", "click[search]", "click[not here]", "jump[x]", "search[]", "click[buy now", "☃[☃]", "click[" + "x" * 100_000 + "]", None, 42],
)
def test_invalid_actions_are_noops(env, action):
    env.reset(options={"goal_index": 1})
    before = env.render()
    obs, reward, term, trunc, info = env.step(action)
    assert obs == before and reward == 0.0 and not term and not trunc
    assert info["valid_action"] is False and info["invalid_reason"]


def test_strict_mode_raises(webshop_dir):
    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), strict=True))
    env.reset(options={"goal_index": 1})
    with pytest.raises(InvalidActionError, match="not clickable"):
        env.step("click[buy now]")
    assert env.steps == 0


def test_search_anywhere_switch(webshop_dir, env):
    open_item(env, 2)
    obs, _, _, _, info = env.step("search[red shoes]")
    assert info["valid_action"] and env.state.page.value == "results"
    strict_page = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), search_anywhere=False))
    open_item(strict_page, 2)
    _, _, _, _, info = strict_page.step("search[red shoes]")
    assert not info["valid_action"] and strict_page.state.page.value == "item"
    assert "search[<query>]" not in info["available_actions"]


def test_step_limit_truncates(webshop_dir):
    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), step_limit=5))
    env.reset(options={"goal_index": 0})
    for i in range(5):
        _, reward, term, trunc, _ = env.step("click[nothing]")
    assert trunc and not term and reward == 0.0
    with pytest.raises(EpisodeOverError):
        env.step("click[nothing]")


def test_reset_options(env):
    _, info = env.reset(options={"goal_index": 42})
    assert info["goal_index"] == 42
    for split, (lo, hi) in {"test": (0, 500), "eval": (500, 1500)}.items():
        _, info = env.reset(seed=1, options={"split": split})
        assert lo <= info["goal_index"] < hi
    a = env.reset(seed=7)[1]["goal_index"]
    b = env.reset(seed=7)[1]["goal_index"]
    assert a == b
    test_products = {env.goals[i].asin for i in env.goals.split("test", "product")}
    _, info = env.reset(seed=3, options={"split": "train", "split_mode": "product"})
    assert env.goal.asin not in test_products
    with pytest.raises(UnknownGoalError):
        env.reset(options={"goal_index": len(env.goals)})
    with pytest.raises(UnknownGoalError):
        env.reset(options={"split": "validation"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goal": 1})


def test_gymnasium_make(webshop_dir):
    env = gym.make("WebShop-v0", config=WebShopConfig(data_dir=str(webshop_dir)), disable_env_checker=True)
    obs, info = env.reset(options={"goal_index": 0})
    assert obs.startswith("WebShop [SEP]")


def test_ten_thousand_random_actions(webshop_dir):
    """Valid and garbage actions mixed: no crash, no hang, every step returns a well-formed tuple."""
    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), step_limit=30))
    rng = random.Random(0)
    garbage = ["", "click[", "]", "search[ ]", "search[\x00]", "click[ñandú 🛒]", "search[" + "a " * 5000 + "]",
               "search[+-&&||!(){}[]^\"~*?:\\/]", "click[b0000000000]", "CLICK[buy now]", "search[AND OR NOT]"]
    env.reset(seed=0)
    purchases = 0
    for i in range(10_000):
        info_actions = env._info(True)["available_actions"]
        if rng.random() < 0.7 and info_actions:
            action = rng.choice(info_actions)
            if action == "search[<query>]":
                action = f"search[{env.goal.instruction_text}]" if rng.random() < 0.5 else f"search[{' '.join(rng.sample(env.goal.instruction_text.split(), 3))}]"
        else:
            action = rng.choice(garbage)
        obs, reward, term, trunc, info = env.step(action)
        assert isinstance(obs, str) and 0.0 <= reward <= 1.0
        if term or trunc:
            purchases += term
            env.reset()
    assert purchases > 10


def test_vector_env_goal_queue(webshop_dir):
    envs = WebShopVectorEnv(3, WebShopConfig(data_dir=str(webshop_dir)))
    obs, infos = envs.reset(options={"goal_queue": [5, 6, 7, 8]})
    assert list(infos["goal_index"]) == [5, 6, 7] and all(o.startswith("WebShop") for o in obs)
    seen = []
    for _ in range(20):
        if not envs.active.any():
            break
        actions = []
        for i in range(3):
            page = infos["page_type"][i] if infos.get("_page_type", [True] * 3)[i] else None
            if not envs.active[i]:
                actions.append(None)
            elif page == "search":
                actions.append(f"search[{infos['instruction'][i]}]")
            elif page == "results":
                actions.append([a for a in infos["available_actions"][i] if ASIN.match(a[6:-1])][0])
            else:
                actions.append("click[buy now]")
        obs, rewards, terms, truncs, infos = envs.step(actions)
        for i in range(3):
            if terms[i]:
                seen.append(infos["final_info"]["goal_index"][i])
                assert infos["final_obs"][i].startswith("Thank you")
    assert sorted(seen) == [5, 6, 7, 8]
    assert not envs.active.any()
