"""Tests of the PPO loop (webshop_trl.trainers.ppo_*): the math against hand computations, and a
few updates of a tiny random policy on the real environment (full, LoRA, resume, the script)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from webshop_trl.envs import WebShopConfig
from webshop_trl.policy import ActionScorerModel
from webshop_trl.trainers.ppo_config import PPOConfig, PPOModelArguments, PPOScriptArguments
from webshop_trl.trainers.ppo_core import clipped_policy_loss, compute_gae, exact_entropy, exact_kl, pad_log_probs

from tiny_policy import tiny_policy as shared_tiny_policy  # tests/ is on sys.path under pytest

def tiny_policy(seed: int = 0) -> ActionScorerModel:
    """The shared tiny policy with a value head, in train mode (as built)."""
    return shared_tiny_policy(seed, use_value_head=True, train=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env_config(webshop_dir):
    return WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich", step_limit=6)


def ppo_config(tmp_path, **kw) -> PPOConfig:
    base = dict(output_dir=str(tmp_path / "ppo"), use_cpu=True, num_envs=2, num_steps=4, num_updates=2, num_epochs=1,
                num_minibatches=2, learning_rate=1e-3, save_steps=0, seed=3)
    base.update(kw)
    return PPOConfig(**base)


# --------------------------------------------------------------------------- math
def test_gae_matches_a_hand_computation():
    g, lam = 0.9, 0.5
    rewards = torch.tensor([[0.0], [0.0], [10.0], [0.0]])
    values = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    ends = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    next_value = torch.tensor([5.0])
    adv, ret = compute_gae(rewards, values, ends, next_value, g, lam)
    d3 = 0 + g * 5 - 4  # last step bootstraps from next_value
    d2 = 10 - 3  # the episode ends: no bootstrap, and no advantage flows back from t=3
    d1 = 0 + g * 3 - 2
    d0 = 0 + g * 2 - 1
    a3, a2 = d3, d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2, a3]))
    assert torch.allclose(ret, adv + values)
    # lambda 1: discounted returns bootstrapped from V at the window end (WebShop's returns)
    _, ret1 = compute_gae(rewards, values, ends, next_value, g, 1.0)
    assert torch.allclose(ret1[:, 0], torch.tensor([g * g * 10, g * 10, 10.0, g * 5]))


def test_exact_entropy_and_kl_over_candidates():
    p = [torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.9, 0.1])]
    q = [torch.tensor([1 / 3, 1 / 3, 1 / 3]), torch.tensor([0.5, 0.5])]
    lp = pad_log_probs([x.log() for x in p], 3)
    lq = pad_log_probs([x.log() for x in q], 3)
    mask = torch.isfinite(lp)
    ent = exact_entropy(lp, mask)
    kl = exact_kl(lp, lq, mask)
    for i in range(2):
        assert math.isclose(float(ent[i]), -sum(float(a) * math.log(a) for a in p[i]), rel_tol=1e-5)
        assert math.isclose(float(kl[i]), sum(float(a) * math.log(a / b) for a, b in zip(p[i], q[i])), rel_tol=1e-5)
    assert torch.isfinite(ent).all() and torch.isfinite(kl).all()


def test_clipped_objective_has_zero_gradient_where_clipped():
    old = torch.zeros(4)
    # ratios 1.5 (A>0: clipped), 0.5 (A<0: clipped), 1.05 (inside), 0.5 (A>0: the unclipped term is the min)
    new = torch.tensor([math.log(1.5), math.log(0.5), math.log(1.05), math.log(0.5)], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 1.0, 1.0])
    loss, ratio, clip_frac, _ = clipped_policy_loss(new, old, adv, 0.2)
    loss.backward()
    assert new.grad[0] == 0 and new.grad[1] == 0
    assert new.grad[2] != 0 and new.grad[3] != 0
    assert math.isclose(float(clip_frac), 0.75)  # 3 of 4 ratios lie outside [0.8, 1.2]


# --------------------------------------------------------------------------- the loop on the real env
def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_ppo_updates_change_the_policy_and_not_the_reference(tmp_path, env_config):
    from webshop_trl.trainers.ppo_trainer import PPOTrainer

    model = tiny_policy()
    before = _params(model)
    il = [{"observation": "Instruction: [SEP] red shirt [SEP] Search", "candidates": ["click[a]", "click[b]"], "label": 1}]
    trainer = PPOTrainer(model, ppo_config(tmp_path, il_coef=0.5, kl_coef=0.1), env_config=env_config, il_dataset=il)
    ref_before = _params(trainer.ref_model)
    history = trainer.train()
    assert [m["update"] for m in history] == [1, 2] and trainer.env_steps == 16
    for key in ("policy_loss", "value_loss", "entropy", "kl_ref", "il_loss", "clip_fraction", "approx_kl", "success_rate"):
        assert key in history[-1]
    assert history[-1]["il_loss"] > 0 and history[-1]["entropy"] >= 0
    after = _params(trainer.unwrapped)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(ref_before[n], p) for n, p in trainer.ref_model.named_parameters())
    assert all(torch.equal(before[n], p) for n, p in trainer.ref_model.named_parameters())
    lines = (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["update"] for x in lines] == [1, 2]


def test_lora_reference_is_the_initial_model(tmp_path, env_config):
    from peft import get_peft_model

    from webshop_trl.trainers.ppo_trainer import PPOTrainer

    args = PPOModelArguments(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    initial = tiny_policy()
    model = tiny_policy()
    processor = model.processor
    peft_model = get_peft_model(model, args.peft_config())
    trainer = PPOTrainer(peft_model, ppo_config(tmp_path, num_updates=1, learning_rate=1e-2), env_config=env_config, processor=processor)
    assert trainer.ref_model is None and trainer.use_adapter_off_reference
    trainer.train()
    obs = ["Instruction: [SEP] i need a red shirt [SEP] Back to Search [SEP] Buy Now"]
    cands = [["click[back to search]", "click[buy now]", "click[red]"]]
    ref = trainer._reference_log_probs(obs, cands, None)
    initial.eval()
    with torch.no_grad():
        expected = initial(**processor(obs, cands)).log_probs
    assert torch.allclose(ref, expected, atol=1e-6)
    with torch.no_grad():
        trained = trainer._forward(trainer.unwrapped, obs, cands).log_probs
    assert not torch.allclose(trained, expected, atol=1e-6)  # the adapter / head did learn
    trainer.save_final()
    reloaded = ActionScorerModel.from_pretrained(tmp_path / "ppo")
    assert reloaded.value_head is not None and reloaded.processor is not None


def test_resume_continues_the_step_count(tmp_path, env_config):
    from webshop_trl.trainers.ppo_trainer import PPOTrainer, sorted_checkpoints

    config = ppo_config(tmp_path, num_updates=1, save_steps=1)
    first = PPOTrainer(tiny_policy(), config, env_config=env_config)
    first.train()
    saved = sorted_checkpoints(config.output_dir)
    assert [p.name for p in saved] == ["checkpoint-1"]
    assert (saved[0] / "config.json").is_file() and (saved[0] / "action_scoring_processor.json").is_file()
    weights = _params(first.unwrapped)

    config2 = ppo_config(tmp_path, num_updates=2, save_steps=1)
    second = PPOTrainer(tiny_policy(seed=1), config2, env_config=env_config)
    second.load_checkpoint("true")
    assert second.update == 1 and second.env_steps == 8
    assert all(torch.equal(weights[n], p) for n, p in second.unwrapped.named_parameters())
    history = second.train(resume_from_checkpoint=False)
    assert [m["update"] for m in history] == [2] and history[-1]["env_steps"] == 16
    assert [p.name for p in sorted_checkpoints(config.output_dir)] == ["checkpoint-1", "checkpoint-2"]


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        PPOConfig(num_envs=3, num_steps=3, num_minibatches=2)
    with pytest.raises(ValueError, match="value head"):
        PPOModelArguments(use_value_head=False)
    assert "value_head" in PPOModelArguments(use_peft=True).peft_config().modules_to_save
    with pytest.raises(ValueError, match="query_source"):
        PPOScriptArguments(query_source="seq2seq")


def test_script_runs_a_recipe_end_to_end(tmp_path, webshop_dir):
    from webshop_trl.scripts import ppo

    checkpoint = tmp_path / "init"
    tiny_policy().save_pretrained(checkpoint)
    out = tmp_path / "run"
    argv = [
        "--config", "recipes/minilm/ppo/config_smoke.yaml", "--model_name_or_path", str(checkpoint),
        "--output_dir", str(out), "--data_dir", str(webshop_dir), "--num_updates", "1", "--num_envs", "2",
        "--num_steps", "2", "--num_minibatches", "1", "--il_coef", "0", "--max_observation_length", "96", "--max_action_length", "16",
    ]
    script_args, config, model_args = ppo.make_parser().parse_args_and_config(argv)
    script_args.il_dataset_paths = None
    trainer = ppo.main(script_args, config, model_args)
    assert trainer.update == 1
    assert ActionScorerModel.from_pretrained(out).value_head is not None


def test_truncation_at_the_step_limit_bootstraps_only_when_asked(tmp_path, env_config):
    import dataclasses

    from webshop_trl.trainers.ppo_trainer import PPOTrainer

    short = dataclasses.replace(env_config, step_limit=2)  # search + one click: every episode is cut
    rewards = {}
    for bootstrap in (False, True):
        trainer = PPOTrainer(tiny_policy(), ppo_config(tmp_path, num_steps=4, bootstrap_truncated=bootstrap), env_config=short)
        trainer.start_envs()
        buf = trainer.rollout()
        ends = buf["ends"].bool()
        assert ends.any()
        rewards[bootstrap] = buf["rewards"][ends]
    assert torch.all(rewards[False] == 0)  # a cut episode's return is 0
    assert torch.all(rewards[True] != 0)  # gamma * V(last page)
