"""The evaluator and baseline agents on the real environment."""

from __future__ import annotations

import json

import pytest

from webshop_trl.agents import RandomAgent, RuleAgent, make_agent
from webshop_trl.envs import WebShopConfig, WebShopEnv
from webshop_trl.evaluation import evaluate_agent


@pytest.fixture(scope="module")
def config(webshop_dir):
    return WebShopConfig(data_dir=str(webshop_dir))


def run_single(agent, config, goal_index):
    env = WebShopEnv(config)
    obs, info = env.reset(options={"goal_index": goal_index})
    while True:
        obs, reward, term, trunc, info = env.step(agent.act([obs], [info])[0])
        if term or trunc:
            return reward, info


def test_vector_evaluation_equals_single_env_runs(config, tmp_path):
    result = evaluate_agent(RuleAgent(), config, split="test", num_envs=4, max_goals=24, progress=False)
    assert [e.goal_index for e in result.episodes] == list(range(24))
    for e in result.episodes:
        reward, info = run_single(RuleAgent(), config, e.goal_index)
        assert e.reward == pytest.approx(reward, abs=1e-12)
        # parts keep their type through the vector env: None stays None, never NaN
        assert e.breakdown == info["reward_breakdown"]
    summary = result.summary()
    assert summary["episodes"] == 24 and summary["mean_steps"] == 3.0
    assert summary["score"] == pytest.approx(100 * sum(e.reward for e in result.episodes) / 24)
    saved = json.loads(result.save(tmp_path / "out" / "rule.json").read_text())
    assert saved["summary"]["score"] == pytest.approx(summary["score"])
    assert len(saved["episodes"]) == 24


def test_random_agent_is_seeded_and_buys(config):
    a = evaluate_agent(RandomAgent(seed=1), config, split="eval", num_envs=2, max_goals=10, progress=False)
    b = evaluate_agent(RandomAgent(seed=1), config, split="eval", num_envs=2, max_goals=10, progress=False)
    assert [e.reward for e in a.episodes] == [e.reward for e in b.episodes]
    assert all(e.goal_index >= 500 for e in a.episodes)
    assert sum(e.purchased for e in a.episodes) >= 5


def test_unknown_agent():
    with pytest.raises(ValueError, match="unknown agent 'gpt'"):
        make_agent("gpt")
