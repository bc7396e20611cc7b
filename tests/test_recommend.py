"""The agent as a recommender (`webshop_trl.recommend`) and the env's free-instruction sessions,
on the real 1k catalog; the policy is the tiny random checkpoint of tests/tiny_policy.py."""

from __future__ import annotations

import json
import re

import pytest

from webshop_trl.agents import RuleAgent
from webshop_trl.agents.policy_agent import PolicyCheckpointError
from webshop_trl.cli.main import main
from webshop_trl.envs import WebShopConfig, WebShopEnv, WebShopVectorEnv
from webshop_trl.errors import UnknownGoalError
from webshop_trl.recommend import (
    RecommendConfig,
    RecommendEpisode,
    Recommender,
    RecommendError,
    rank_products,
    recommend,
)
from webshop_trl.recommend import recommender as recommender_module

pytestmark = pytest.mark.usefixtures("one_thread")

FREE_TEXT = "i need a red dress under 40 dollars"
ENGINE = "bm25s"  # no JVM start in this file
ASIN = re.compile(r"^click\[b[0-9a-z]{9}\]$")


@pytest.fixture(scope="module")
def env(webshop_dir):
    return WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), search_engine=ENGINE))


def small_config(webshop_dir, **kw) -> RecommendConfig:
    kw.setdefault("engine", ENGINE)
    kw.setdefault("step_limit", 8)
    return RecommendConfig(data_dir=str(webshop_dir), **kw)


def buy_first_result(env, query: str):
    env.step(f"search[{query}]")
    link = next(a for a in env._info(True)["available_actions"] if ASIN.match(a))
    env.step(link)
    return env.step("click[buy now]")


# ------------------------------------------------------------------ the environment
def test_env_free_instruction_session(env):
    obs, info = env.reset(options={"instruction": f"  {FREE_TEXT} "})
    assert obs == f"WebShop [SEP] Instruction: [SEP] {FREE_TEXT} [SEP] Search"
    assert env.goal is None and info["goal_known"] is False and info["goal_index"] is None
    assert info["instruction"] == FREE_TEXT
    obs, reward, term, trunc, info = buy_first_result(env, FREE_TEXT)
    assert term and not trunc and reward == 0.0
    assert info["reward_breakdown"] is None and info["goal_known"] is False
    assert info["purchased_asin"] and obs.endswith("Your score (min 0.0, max 1.0) [SEP] N.A.")
    # a goal session afterwards is scored again and flagged as known
    _, info = env.reset(options={"goal_index": 3})
    assert info["goal_known"] is True and env.goal.index == 3
    _, reward, term, _, info = buy_first_result(env, env.goal.instruction_text)
    assert term and info["reward_breakdown"]["total"] == reward


def test_env_free_instruction_errors(env):
    with pytest.raises(ValueError, match="cannot be combined"):
        env.reset(options={"instruction": FREE_TEXT, "goal_index": 3})
    with pytest.raises(ValueError, match="cannot be combined"):
        env.reset(options={"instruction": FREE_TEXT, "split": "test"})
    for bad in ("", "   ", 5):
        with pytest.raises(ValueError, match="non-empty string"):
            env.reset(options={"instruction": bad})


def test_vector_env_queue_of_instructions(webshop_dir):
    envs = WebShopVectorEnv(2, WebShopConfig(data_dir=str(webshop_dir), search_engine=ENGINE))
    _, infos = envs.reset(options={"goal_queue": [FREE_TEXT, 3, FREE_TEXT]})
    assert list(infos["goal_index"]) == [None, 3] and list(infos["goal_known"]) == [False, True]
    assert list(infos["instruction"])[0] == FREE_TEXT


# ------------------------------------------------------------------ ranking
def test_rank_products_ties(catalog):
    a, b, c = (p.asin for p in catalog.products[:3])
    ep = lambda run, asin, reward, opts=None: RecommendEpisode(run, asin, opts or {}, reward, 3, asin is not None)
    episodes = [ep(0, c, 0.5), ep(1, a, 0.2), ep(2, b, 0.9), ep(3, a, 0.4), ep(4, b, 0.1), ep(5, None, 0.0),
                ep(6, c, 0.5, {"size": "l"}), ep(7, c, 0.5, {"size": "l"})]
    ranked = rank_products(episodes, catalog, 8, goal_known=True)
    assert [r.asin for r in ranked] == [c, b, a]  # 3 picks; then 2 and 2 by mean reward 0.5 > 0.3
    assert [r.times_chosen for r in ranked] == [3, 2, 2] and sum(r.times_chosen for r in ranked) == 7
    assert ranked[0].options == {"size": "l"} and ranked[0].runs == [0, 6, 7] and ranked[0].share == 3 / 8
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert ranked[1].mean_reward == pytest.approx(0.5) and ranked[2].mean_reward == pytest.approx(0.3)
    # unknown goal: no rewards, ties by first appearance
    free = [RecommendEpisode(r, x, {}, None, 3, True) for r, x in enumerate([b, a, a, b])]
    ranked = rank_products(free, catalog, 4, goal_known=False)
    assert [r.asin for r in ranked] == [b, a] and all(r.mean_reward is None for r in ranked)


# ------------------------------------------------------------------ the recommender
def test_rule_agent_on_a_known_goal(webshop_dir, env):
    rec = Recommender(RuleAgent(), small_config(webshop_dir, num_runs=3))
    result = rec.recommend(goal_index=3, split="test")
    _, info = env.reset(options={"goal_index": 3})
    _, reward, *_ = buy_first_result(env, env.goal.instruction_text.lower())
    assert result.goal_known and result.goal_index == 3 and result.goal_asin == env.goal.asin
    assert len(result) == 1 and result[0].times_chosen == 3 and result[0].share == 1.0
    assert result[0].mean_reward == pytest.approx(reward) and result.mean_reward == pytest.approx(reward)
    assert [e.run for e in result.episodes] == [0, 1, 2] and all(e.reward == pytest.approx(reward) for e in result.episodes)
    # the goal's exact text plays the goal too
    again = rec.recommend(env.goal.instruction_text)
    assert again.goal_index == 3 and again.to_dict()["recommendations"] == result.to_dict()["recommendations"]


def test_policy_sampled_runs(webshop_dir, tiny_checkpoint):
    config = small_config(webshop_dir, num_runs=6, seed=1, num_envs=3)
    rec = Recommender.from_checkpoint(tiny_checkpoint, config)
    known = rec.recommend(goal_index=5)
    assert sum(r.times_chosen for r in known) + known.no_purchase == 6 == len(known.episodes)
    assert all(r.mean_reward is not None for r in known)
    assert all(e.reward is not None for e in known.episodes)
    assert len({tuple(e.actions) for e in known.episodes}) > 1  # runs are sampled, not copies
    ranks = [(-r.times_chosen, -r.mean_reward, r.first_run) for r in known]
    assert ranks == sorted(ranks)

    free = rec.recommend(FREE_TEXT)
    assert not free.goal_known and free.goal_index is None and free.mean_reward is None
    assert sum(r.times_chosen for r in free) + free.no_purchase == 6
    assert all(r.mean_reward is None for r in free) and all(e.reward is None for e in free.episodes)

    # deterministic given the seed, and independent of how many runs are stepped together
    again = Recommender(rec.agent, small_config(webshop_dir, num_runs=6, seed=1, num_envs=4)).recommend(FREE_TEXT)
    strip = lambda d: {k: v for k, v in d.items() if k not in ("seconds", "config")}
    assert strip(again.to_dict()) == strip(free.to_dict())
    table = free.table()
    assert table.splitlines()[0].startswith("| rank | ASIN") and len(table.splitlines()) == 2 + len(free)


def test_request_errors(webshop_dir):
    rec = Recommender(RuleAgent(), small_config(webshop_dir, num_runs=1))
    with pytest.raises(RecommendError, match="empty instruction '  '"):
        rec.recommend("  ")
    with pytest.raises(RecommendError, match="give an instruction or a goal index"):
        rec.recommend()
    with pytest.raises(RecommendError, match="'red shoes' contradicts goal 3"):
        rec.recommend("red shoes", goal_index=3)
    with pytest.raises(UnknownGoalError, match="unknown goal index 100000"):
        rec.recommend(goal_index=100_000)
    with pytest.raises(UnknownGoalError, match="goal 700 is not in the test split"):
        rec.recommend(goal_index=700, split="test")
    with pytest.raises(RecommendError, match="num_runs must be an integer >= 1, got 0"):
        RecommendConfig(num_runs=0)
    with pytest.raises(RecommendError, match="temperature must be >= 0, got -1"):
        RecommendConfig(temperature=-1)
    with pytest.raises(PolicyCheckpointError, match="/no/such/checkpoint"):
        Recommender.from_checkpoint("/no/such/checkpoint")


def test_default_checkpoint_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(recommender_module, "default_checkpoint", lambda: tmp_path / "outputs" / "il" / "minilm")
    with pytest.raises(PolicyCheckpointError, match=r"no policy checkpoint at .*outputs/il/minilm \(the default\)"):
        recommend(FREE_TEXT)


# ------------------------------------------------------------------ command line
def test_cli_end_to_end(webshop_dir, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "rec.json"
    common = ["--data-dir", str(webshop_dir), "--engine", ENGINE, "--step-limit", "8"]
    rc = main(["recommend", FREE_TEXT, "--checkpoint", str(tiny_checkpoint), "--runs", "3", "--seed", "2",
               "--json", str(out), "--episodes", *common])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert saved["instruction"] == FREE_TEXT and saved["goal_known"] is False and saved["num_runs"] == 3
    assert sum(r["times_chosen"] for r in saved["recommendations"]) + saved["no_purchase"] == 3
    assert len(saved["episodes"]) == 3 and saved["config"]["seed"] == 2
    printed = capsys.readouterr().out
    assert "free text (no reward)" in printed and "run 2:" in printed

    rc = main(["recommend", "--goal-index", "3", "--split", "test", "--agent", "rule", "--runs", "2", *common])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["goal_index"] == 3 and last["runs"] == 2 and last["no_purchase"] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--agent", "rule"], "empty instruction ''"),
        (["--agent", "rule"], "give an instruction"),
        (["red shoes", "--goal-index", "3", "--agent", "rule"], "'red shoes' contradicts goal 3"),
        (["--goal-index", "99999", "--agent", "rule"], "unknown goal index 99999"),
        (["red shoes", "--runs", "0", "--agent", "rule"], "--runs must be >= 1, got 0"),
        (["red shoes", "--checkpoint", "/no/such/checkpoint"], "/no/such/checkpoint"),
        (["red shoes", "--agent", "rule", "--checkpoint", "/x"], "--checkpoint /x is for --agent policy"),
    ],
)
def test_cli_errors(webshop_dir, capsys, args, message):
    rc = main(["recommend", *args, "--data-dir", str(webshop_dir), "--engine", ENGINE])
    assert rc == 2
    assert message in capsys.readouterr().err
