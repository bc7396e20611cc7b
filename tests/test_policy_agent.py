"""`PolicyAgent` (search policy + BERT choice policy) and the search policies, on the real env.

The policy is a tiny random `ActionScorerModel` (1 layer, hidden 32) saved to a temp folder and
loaded back as a checkpoint; seq2seq query models are tiny random T5/BART built here too.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

from webshop_trl.agents import AGENTS, RandomAgent, RuleAgent, make_agent
from webshop_trl.agents.policy_agent import PolicyAgent, PolicyCheckpointError, episode_seed
from webshop_trl.agents.search_policy import (
    HumanQuery,
    InstructionQuery,
    Seq2SeqQuery,
    SearchPolicyError,
    make_search_policy,
)
from webshop_trl.cli.main import main
from webshop_trl.envs import WebShopConfig, WebShopEnv
from webshop_trl.errors import DataFileError
from webshop_trl.evaluation import evaluate_agent

from tiny_policy import tiny_tokenizer  # tests/ is on sys.path under pytest


def save_tiny_seq2seq(path, kind: str):
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    pad, cls, sep = tok.pad_token_id, tok.cls_token_id, tok.sep_token_id
    if kind == "t5":
        config = T5Config(vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                          pad_token_id=pad, eos_token_id=sep, decoder_start_token_id=pad)
        model = T5ForConditionalGeneration(config)
    else:
        config = BartConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                            pad_token_id=pad, bos_token_id=cls, eos_token_id=sep, decoder_start_token_id=sep, forced_eos_token_id=None)
        model = BartForConditionalGeneration(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def config(webshop_dir):
    return WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich", step_limit=12)


class Recorder:
    """Wraps an agent: logs (goal, step) -> action, and the pages each act call saw."""

    def __init__(self, agent):
        self.agent = agent
        self.name = agent.name
        self.log: dict[tuple[int, int], str] = {}
        self.calls: list[list[dict]] = []

    def act(self, observations, infos):
        actions = self.agent.act(observations, infos)
        self.calls.append(list(infos))
        for info, a in zip(infos, actions):
            self.log[(info["goal_index"], info["step"])] = a
        return actions


def run(agent, config, goals, num_envs=3):
    rec = Recorder(agent)
    result = evaluate_agent(rec, config, goal_indices=goals, num_envs=num_envs, progress=False)
    return result, rec


GOALS = [1500, 1501, 2000, 2500, 3000, 3500]


# --------------------------------------------------------------------------- evaluation
def test_greedy_agent_runs_in_the_evaluator_deterministically(checkpoint, config):
    a, rec_a = run(PolicyAgent(checkpoint, greedy=True), config, GOALS)
    b, rec_b = run(PolicyAgent(checkpoint, greedy=True), config, GOALS)
    assert [e.goal_index for e in a.episodes] == sorted(GOALS)
    assert rec_a.log == rec_b.log and [e.reward for e in a.episodes] == [e.reward for e in b.episodes]
    assert sum(e.invalid_actions for e in a.episodes) == 0
    # every action is a search of the instruction or one of the page's clicks
    assert all(act.startswith(("search[", "click[")) for act in rec_a.log.values())
    first = {g: rec_a.log[(g, 0)] for g in GOALS}
    env = WebShopEnv(config)
    for g in GOALS:
        _, info = env.reset(options={"goal_index": g})
        assert first[g] == f"search[{info['instruction'].lower()}]"


def test_greedy_choice_is_the_argmax(checkpoint, config):
    agent = PolicyAgent(checkpoint, greedy=True)
    env = WebShopEnv(config)
    obs, info = env.reset(options={"goal_index": 1500})
    obs, _, _, _, info = env.step(f"search[{info['instruction'].lower()}]")
    (d,) = agent.decide([obs], [info])
    clicks = [a for a in info["available_actions"] if a.startswith("click[")]
    lp = agent.model.score([obs], [clicks])[0]
    assert d.kind == "choice" and d.candidates == clicks and d.index == int(lp.argmax())
    assert d.action == clicks[d.index] and d.log_prob == pytest.approx(float(lp.max()))


def test_one_batched_scoring_call_per_vector_step(checkpoint, config):
    agent = PolicyAgent(checkpoint, temperature=1.0, seed=0)
    calls = []
    score = agent.model.score

    def spy(observations, candidates, *args, **kwargs):
        calls.append(len(observations))
        return score(observations, candidates, *args, **kwargs)

    agent.model.score = spy
    result, rec = run(agent, config, GOALS, num_envs=4)
    choice_steps = [call for call in rec.calls if any(i["page_type"] != "search" for i in call)]
    assert len(calls) == len(choice_steps) > 0  # one call per vector step that has choice pages
    assert calls == [sum(i["page_type"] != "search" for i in call) for call in choice_steps]
    assert max(calls) > 1  # pages of several sessions in one forward pass
    assert agent.stats["score_calls"] == len(calls) and agent.stats["act_calls"] == len(rec.calls)


def test_sampling_is_seeded_and_independent_of_batching(checkpoint, config):
    _, a = run(PolicyAgent(checkpoint, temperature=1.0, seed=7), config, GOALS, num_envs=3)
    _, b = run(PolicyAgent(checkpoint, temperature=1.0, seed=7), config, GOALS, num_envs=3)
    _, one = run(PolicyAgent(checkpoint, temperature=1.0, seed=7), config, GOALS, num_envs=1)
    _, other = run(PolicyAgent(checkpoint, temperature=1.0, seed=8), config, GOALS, num_envs=3)
    assert a.log == b.log
    assert a.log == one.log  # per-(goal, step) seeds: the session count does not matter
    assert a.log != other.log
    greedy = PolicyAgent(checkpoint, temperature=0.0)
    assert greedy.greedy and "greedy" in greedy.name


def test_encoding_cache_is_on_by_default_and_keeps_every_decision(checkpoint, config):
    cached = PolicyAgent(checkpoint, temperature=1.0, seed=7)
    plain = PolicyAgent(checkpoint, temperature=1.0, seed=7, encoding_cache=False)
    assert cached.model.encoding_cache is cached.encoding_cache and plain.cache_stats is None
    _, a = run(cached, config, GOALS, num_envs=3)
    _, b = run(plain, config, GOALS, num_envs=3)
    assert a.log == b.log
    stats = cached.cache_stats
    assert stats["actions"]["hits"] > stats["actions"]["misses"] > 0 and stats["observations"]["misses"] > 0
    assert plain.model.encoding_cache is None  # encoding_cache=False leaves the model alone
    # agents sharing a model share its cache (Thompson sampling builds one agent per run)
    other = PolicyAgent(model=cached.model, greedy=True)
    assert other.encoding_cache is cached.encoding_cache


def test_a_rollout_after_training_uses_the_new_weights(checkpoint, config):
    agent = PolicyAgent(checkpoint, greedy=True)
    env = WebShopEnv(config)
    obs, info = env.reset(options={"goal_index": 1500})
    obs, _, _, _, info = env.step(f"search[{info['instruction'].lower()}]")
    clicks = [a for a in info["available_actions"] if a.startswith("click[")]
    agent.decide([obs], [info])
    model = agent.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    model.train()
    for _ in range(3):  # teach it the last click of the page
        model(**model.processor([obs], [clicks], labels=[len(clicks) - 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    (d,) = agent.decide([obs], [info])
    fresh = model.score([obs], [clicks], cache=False)[0]
    assert d.index == int(fresh.argmax()) and d.log_prob == pytest.approx(float(fresh.max()), abs=1e-5)
    assert agent.cache_stats["invalidations"] == 1


def test_bf16_inference_switch_keeps_a_greedy_choice_close_to_fp32(checkpoint, config):
    fast = PolicyAgent(checkpoint, greedy=True, inference="bf16")
    base = PolicyAgent(checkpoint, greedy=True)
    assert fast.name.endswith("-bf16") and not base.name.endswith("fp32") and fast.bf16 is True
    assert PolicyAgent(checkpoint, bf16=True).inference == "bf16"
    configured = PolicyAgent(checkpoint)
    configured.model.config.bf16 = True  # a checkpoint saved with bf16 in its config
    assert PolicyAgent(model=configured.model).inference == "bf16"
    assert PolicyAgent(model=configured.model, inference="fp32").bf16 is False  # explicit fp32 wins
    env = WebShopEnv(config)
    obs, info = env.reset(options={"goal_index": 1500})
    obs, _, _, _, info = env.step(f"search[{info['instruction'].lower()}]")
    (d,) = fast.decide([obs], [info])
    (ref,) = base.decide([obs], [info])
    assert d.kind == "choice" and d.candidates == ref.candidates
    # the tiny random policy's log-probs are within a few hundredths of each other, so only closeness is asked
    assert d.log_prob == pytest.approx(float(base.model.score([obs], [d.candidates])[0][d.index]), abs=0.05)
    assert fast.cache_stats["actions"]["misses"] > 0  # bf16 scoring goes through the cache too


def test_search_pages_and_pages_without_clicks(checkpoint):
    agent = PolicyAgent(checkpoint, greedy=True)
    infos = [
        {"page_type": "search", "available_actions": ["search[<query>]"], "instruction": "Find Red [Shoes]", "goal_index": 1, "step": 0},
        {"page_type": "results", "available_actions": ["search[<query>]"], "instruction": "blue shirt", "goal_index": 2, "step": 3},
        {"page_type": "results", "available_actions": [], "instruction": "x", "goal_index": 3, "step": 3},
    ]
    decisions = agent.decide(["p1", "p2", "p3"], infos)
    assert [d.kind for d in decisions] == ["search", "search", "fallback"]
    assert decisions[0].action == "search[find red shoes]"  # brackets would end the action early
    assert decisions[1].action == "search[blue shirt]" and decisions[2].action == "click[back to search]"
    assert agent.stats["score_calls"] == 0 and agent.stats["fallbacks"] == 1
    with pytest.raises(ValueError, match="observations"):
        agent.decide(["only one"], infos)


def test_candidate_cap_keeps_first_six_and_is_seeded(checkpoint, config):
    env = WebShopEnv(config)
    obs, info = env.reset(options={"goal_index": 1500})
    obs, *_ = env.step(f"search[{info['instruction'].lower()}]")
    obs, _, _, _, info = env.step("click[b07hrfsnl4]")  # an item page with 49 clicks
    clicks = [a for a in info["available_actions"] if a.startswith("click[")]
    assert len(clicks) > 20
    capped = PolicyAgent(checkpoint, temperature=1.0, seed=3, max_candidates=20)
    (d,) = capped.decide([obs], [info])
    assert len(d.candidates) == 16 and d.candidates[:6] == clicks[:6] and set(d.candidates) <= set(clicks)
    (again,) = PolicyAgent(checkpoint, temperature=1.0, seed=3, max_candidates=20).decide([obs], [info])
    assert again.candidates == d.candidates and again.action == d.action
    (full,) = PolicyAgent(checkpoint, temperature=1.0, seed=3).decide([obs], [info])
    assert full.candidates == clicks


def test_bad_settings_and_checkpoints(checkpoint, tmp_path):
    with pytest.raises(PolicyCheckpointError, match="not found"):
        PolicyAgent(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyCheckpointError, match="no config.json"):
        PolicyAgent(tmp_path / "empty")
    with pytest.raises(PolicyCheckpointError, match="exactly one"):
        PolicyAgent()
    with pytest.raises(ValueError, match="temperature"):
        PolicyAgent(checkpoint, temperature=-1)
    with pytest.raises(SearchPolicyError, match="unknown query source"):
        PolicyAgent(checkpoint, query_source="bing")
    with pytest.raises(ValueError, match="inference must be one of"):
        PolicyAgent(checkpoint, inference="int8")  # measured: it changes half of the choices
    with pytest.raises(ValueError, match="contradicts"):
        PolicyAgent(checkpoint, inference="fp32", bf16=True)
    with pytest.raises(TypeError, match="encoding_cache"):
        PolicyAgent(checkpoint, encoding_cache="yes")
    with pytest.raises(SearchPolicyError, match="needs a model path"):
        PolicyAgent(checkpoint, query_source="seq2seq")
    with pytest.raises(SearchPolicyError, match="not a folder"):
        PolicyAgent(checkpoint, query_source="seq2seq", query_model=str(tmp_path / "no-model"))


def test_make_agent(checkpoint):
    agent = make_agent("policy", checkpoint=checkpoint, greedy=True, query_source="human")
    assert isinstance(agent, PolicyAgent) and agent.name.startswith("policy-") and agent.search.name == "human"
    assert isinstance(make_agent("rule"), RuleAgent) and isinstance(make_agent("random", seed=1), RandomAgent)
    assert "policy" in AGENTS
    with pytest.raises(ValueError, match="unknown agent 'gpt'.*policy"):
        make_agent("gpt")


# --------------------------------------------------------------------------- search policies
def test_instruction_query():
    assert InstructionQuery().queries(["Find me RED shoes, and price lower than 50.00 dollars"]) == [
        "find me red shoes, and price lower than 50.00 dollars"
    ]


def test_human_query_lookup_and_fallback(webshop_dir, human_goals):
    policy = make_search_policy("human", data_dir=webshop_dir)
    hit = next(g for g in human_goals if policy.lookup(g.instruction_text))  # 1 of the 13 on the 1k catalog
    miss = next(g for g in human_goals if not policy.lookup(g.instruction_text))
    queries = policy.queries([hit.instruction_text, miss.instruction_text])
    assert queries[0] == policy.lookup(hit.instruction_text)[0] and queries[0] != hit.instruction_text.lower()
    assert queries[1] == miss.instruction_text.lower()
    assert (policy.hits, policy.misses) == (1, 1)
    mapping = {"I want Red shoes": ["red shoes", "shoes [red]", "running shoes"]}
    first = HumanQuery(mapping)
    assert first.queries(["i want red shoes, and price lower than 30.00 dollars"]) == ["red shoes"]
    sampled = HumanQuery(mapping, pick="sample")
    draws = [sampled.queries(["I want red shoes"], [random.Random(s)])[0] for s in range(20)]
    assert set(draws) == {"red shoes", "shoes red", "running shoes"}
    assert draws == [sampled.queries(["I want red shoes"], [random.Random(s)])[0] for s in range(20)]
    with pytest.raises(DataFileError, match="goal_query_map.json"):
        HumanQuery(data_dir=webshop_dir / "nowhere")


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_seq2seq_query_with_a_tiny_random_model(kind, tmp_path):
    path = save_tiny_seq2seq(tmp_path / kind, kind)
    policy = Seq2SeqQuery(path, num_beams=2, max_new_tokens=6)
    texts = ["Find me red shoes, and price lower than 50.00 dollars", "I need a blue shirt", "find me red shoes"]
    queries = policy.queries(texts)
    assert policy.generate_calls == 1  # one batched generate; the first and last share an input
    assert len(queries) == 3 and queries[0] == queries[2]
    assert all(q and "[" not in q and "]" not in q and q == q.lower() for q in queries)
    assert policy.queries(texts) == queries and policy.generate_calls == 1  # cached
    assert policy.model_input(texts[0]) == "find me red shoes"  # WebShop's BART input: no price clause
    sampled = Seq2SeqQuery(path, num_beams=2, max_new_tokens=6, pick="sample")
    beams = sampled.beams(texts[:1])[0]
    assert len(beams) == 2
    draw = [sampled.queries(texts[:1], [random.Random(s)])[0] for s in range(6)]
    assert set(draw) <= set(b or texts[0].lower() for b in beams)
    assert draw == [sampled.queries(texts[:1], [random.Random(s)])[0] for s in range(6)]
    # a generation that decodes to nothing usable falls back to the instruction
    policy._cache[policy.model_input("odd")] = [""]
    assert policy.queries(["Odd"]) == ["odd"] and policy.fallbacks == 1


def test_policy_agent_with_a_seq2seq_search_policy(checkpoint, config, tmp_path):
    path = save_tiny_seq2seq(tmp_path / "t5", "t5")
    agent = PolicyAgent(checkpoint, greedy=True, query_source="seq2seq", query_model=path)
    reference = Seq2SeqQuery(path, num_beams=5)
    result, rec = run(agent, config, GOALS[:3], num_envs=3)
    env = WebShopEnv(config)
    for g in GOALS[:3]:
        _, info = env.reset(options={"goal_index": g})
        assert rec.log[(g, 0)] == f"search[{reference.queries([info['instruction']])[0]}]"
    assert agent.search.generate_calls == 1 and len(result.episodes) == 3


def test_episode_seed_is_stable():
    assert episode_seed(0, 1500, 0, 3, "choice") == episode_seed(0, 1500, 0, 3, "choice")
    assert episode_seed(0, 1500, 0, 3, "choice") != episode_seed(0, 1500, 0, 4, "choice")
    assert 0 <= episode_seed("x") < 2**63


# --------------------------------------------------------------------------- CLI
def test_evaluate_cli_with_a_policy(checkpoint, webshop_dir, tmp_path, capsys):
    out = tmp_path / "policy.json"
    args = ["evaluate", "--agent", "policy", "--checkpoint", str(checkpoint), "--greedy", "--split", "train", "--max-goals", "2",
            "--num-envs", "2", "--step-limit", "6", "--output", str(out), "--data-dir", str(webshop_dir)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["agent"].startswith("policy-") and "greedy" in summary["agent"]
    assert json.loads(out.read_text())["summary"]["episodes"] == 2
    # a checkpoint folder as --agent, sampled
    assert main(["evaluate", "--agent", str(checkpoint), "--temperature", "0.5", "--split", "train", "--max-goals", "1",
                 "--num-envs", "1", "--step-limit", "4", "--output", str(tmp_path / "b.json"), "--data-dir", str(webshop_dir)]) == 0
    assert "t0.5" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["agent"]


def test_evaluate_cli_errors(tmp_path, webshop_dir, capsys):
    code = main(["evaluate", "--agent", "policy", "--checkpoint", str(tmp_path / "missing"), "--max-goals", "1",
                 "--data-dir", str(webshop_dir)])
    assert code == 2 and "policy checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="needs --checkpoint"):
        main(["evaluate", "--agent", "policy", "--max-goals", "1", "--data-dir", str(webshop_dir)])
    with pytest.raises(SystemExit, match="unknown agent"):
        main(["evaluate", "--agent", "gpt", "--max-goals", "1", "--data-dir", str(webshop_dir)])
