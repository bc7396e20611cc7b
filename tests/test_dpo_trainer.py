"""Contract tests of `ActionDPOTrainer` (TRL 1.16's real `DPOTrainer`, subclassed for the action scorer).

Everything runs on a tiny random BERT policy (2 layers, hidden 32, the small vocabulary of tests/tiny_policy.py) and a few
preference pairs built in memory, so the file takes seconds. The tests go through TRL's own
`DPOTrainer.__init__` / `train` / `evaluate`, so a TRL upgrade that moves the hooks this trainer
overrides (or how it picks the reference model) fails here.
"""

from __future__ import annotations

import copy
import inspect
import math

import datasets
import pytest
import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer

from webshop_trl.errors import DataFileError
from webshop_trl.policy import ActionScorerModel
from webshop_trl.trainers.dpo_config import SCORE_HEAD_MODULES, ActionDPOConfig, DPOModelArguments
from webshop_trl.trainers.dpo_data import ActionDPODataCollator, check_preference_dataset
from webshop_trl.trainers.dpo_loss import SUPPORTED_LOSS_TYPES, dpo_loss, per_pair_dpo_loss
from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer

from tiny_policy import tiny_policy  # tests/ is on sys.path under pytest

PAGES = [
    ("i need red shoes", ["click[back to search]", "click[next >]", "click[item - red running shoes]", "click[item - blue shirt]"]),
    ("i want a blue shirt", ["click[back to search]", "click[< prev]", "click[item - blue cotton shirt]"]),
    ("i need a black dress", ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[buy now]"]),
    ("i want green leather shoes", ["click[back to search]", "click[description]", "click[features]", "click[buy now]"]),
]


def make_policy(seed: int = 0) -> ActionScorerModel:
    """The shared tiny policy, 2 layers, BERT's default dropout, no value head, in train mode."""
    return tiny_policy(seed, num_hidden_layers=2, dropout=0.1, max_observation_length=48, max_instruction_length=16,
                       max_action_length=16, use_value_head=False, train=True)


def make_rows(n: int = 16) -> list[dict]:
    rows = []
    for i in range(n):
        instruction, cands = PAGES[i % len(PAGES)]
        chosen, rejected = cands[-1 - (i // 4) % 2], cands[0]
        rows.append(
            dict(
                prompt=f"WebShop [SEP] Instruction: [SEP] {instruction} [SEP] page {i % 10} of results",
                chosen=chosen, rejected=rejected, available_actions=list(cands),
                chosen_index=cands.index(chosen), rejected_index=cands.index(rejected),
                goal_index=i, step=1 + i % 3, source="test", reward=1.0,
            )
        )
    return rows


def make_args(tmp_path, **kwargs) -> ActionDPOConfig:
    defaults = dict(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=1, report_to="none", use_cpu=True,
        save_strategy="no", seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    defaults.update(kwargs)
    return ActionDPOConfig(**defaults)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def dataset():
    return datasets.Dataset.from_list(make_rows())


def batch_log_probs(model, processor, rows):
    """(chosen, rejected) log pi [B] computed outside the trainer (the policy's own forward)."""
    batch = ActionDPODataCollator(processor)(rows)
    inputs = {k: v for k, v in batch.items() if k not in ("chosen_index", "rejected_index")}
    with torch.no_grad():
        log_probs = model(**inputs).log_probs
    return (
        log_probs.gather(1, batch["chosen_index"][:, None]).squeeze(1),
        log_probs.gather(1, batch["rejected_index"][:, None]).squeeze(1),
    )


def state_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- TRL's hooks
def test_trl_hooks_this_trainer_overrides_are_still_there():
    """The four DPOTrainer methods overridden here, with the signatures TRL 1.0-1.16 had."""
    expected = {
        "_prepare_dataset": ["self", "dataset", "processing_class", "args", "dataset_name"],
        "_set_signature_columns_if_needed": ["self"],
        "compute_ref_log_probs": ["self", "model", "inputs"],
        "compute_loss": ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
        "prediction_step": ["self", "model", "inputs", "prediction_loss_only", "ignore_keys"],
        "_precompute_ref_logps": ["self", "dataset", "name", "batch_size"],
    }
    for name, params in expected.items():
        assert list(inspect.signature(getattr(DPOTrainer, name)).parameters) == params, name
    source = inspect.getsource(DPOTrainer.__init__)
    for needle in ("self._prepare_dataset(", "self._metrics = {", "self.precompute_ref_logps", "self.ref_model = None", "self.ref_model = ref_model"):
        assert needle in source, needle
    assert "self.compute_ref_log_probs(" in inspect.getsource(DPOTrainer._precompute_ref_logps)
    assert issubclass(ActionDPOTrainer, DPOTrainer)


# --------------------------------------------------------------------------- losses by hand
FIXED = dict(
    chosen=torch.tensor([-0.5, -1.2, -2.0]), rejected=torch.tensor([-1.5, -0.9, -2.0]),
    ref_chosen=torch.tensor([-0.7, -1.0, -1.8]), ref_rejected=torch.tensor([-1.1, -1.1, -2.3]),
)


def _hand(loss_type: str, beta: float, eps: float) -> float:
    """The mean per-pair loss, written out with math on plain floats."""
    total = 0.0
    rows = list(zip(*(FIXED[k].tolist() for k in ("chosen", "rejected", "ref_chosen", "ref_rejected"))))
    for c, r, rc, rr in rows:
        d = (c - rc) - (r - rr)
        logsig = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
        if loss_type == "sigmoid":
            total += -logsig(beta * d)
        elif loss_type == "hinge":
            total += max(0.0, 1 - beta * d)
        elif loss_type == "ipo":
            total += (d - 1 / (2 * beta)) ** 2
        elif loss_type == "robust":
            total += (-(1 - eps) * logsig(beta * d) + eps * logsig(-beta * d)) / (1 - 2 * eps)
        elif loss_type == "sft":
            total += -c
    return total / len(rows)


@pytest.mark.parametrize("loss_type", SUPPORTED_LOSS_TYPES)
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_each_loss_type_against_a_hand_computed_value(loss_type, beta):
    eps = 0.2 if loss_type == "robust" else 0.0
    cl = FIXED["chosen"] - FIXED["ref_chosen"]
    rl = FIXED["rejected"] - FIXED["ref_rejected"]
    got = dpo_loss(cl, rl, [loss_type], beta, eps, chosen_logps=FIXED["chosen"]).item()
    assert got == pytest.approx(_hand(loss_type, beta, eps), rel=1e-5, abs=1e-6)


def test_known_values_and_combined_losses():
    zero = torch.zeros(2)
    # policy == reference: DPO is log 2, hinge 1, IPO (1/2beta)^2; robust with eps=0 is DPO
    assert dpo_loss(zero, zero, ["sigmoid"], 0.1).item() == pytest.approx(math.log(2))
    assert dpo_loss(zero, zero, ["hinge"], 0.1).item() == pytest.approx(1.0)
    assert dpo_loss(zero, zero, ["ipo"], 0.1).item() == pytest.approx(25.0)
    assert dpo_loss(zero, zero, ["robust"], 0.1, 0.0).item() == pytest.approx(math.log(2))
    cl, rl = FIXED["chosen"] - FIXED["ref_chosen"], FIXED["rejected"] - FIXED["ref_rejected"]
    mixed = dpo_loss(cl, rl, ["sigmoid", "hinge"], 0.3, loss_weights=[0.8, 0.2]).item()
    assert mixed == pytest.approx(0.8 * _hand("sigmoid", 0.3, 0) + 0.2 * _hand("hinge", 0.3, 0), rel=1e-6)
    with pytest.raises(ValueError, match="exo_pair"):
        per_pair_dpo_loss(cl, rl, "exo_pair", 0.1)
    # RPO: DPO plus the chosen action's NLL; sft cannot run without the policy's chosen log-probs
    rpo = dpo_loss(cl, rl, ["sigmoid", "sft"], 0.1, loss_weights=[1.0, 0.5], chosen_logps=FIXED["chosen"]).item()
    assert rpo == pytest.approx(_hand("sigmoid", 0.1, 0) + 0.5 * _hand("sft", 0.1, 0), rel=1e-6)
    with pytest.raises(ValueError, match="chosen log-probs"):
        dpo_loss(cl, rl, ["sigmoid", "sft"], 0.1)


@pytest.mark.parametrize("loss_type", SUPPORTED_LOSS_TYPES)
def test_trainer_loss_is_the_formula_on_the_policy_log_probs(tmp_path, dataset, loss_type):
    """One batch through the trainer's compute_loss (reference = frozen copy, policy moved away
    from it) equals the formula on log-probs computed outside the trainer."""
    policy = make_policy()
    eps = 0.1 if loss_type == "robust" else 0.0
    trainer = ActionDPOTrainer(
        model=policy, args=make_args(tmp_path, loss_type=[loss_type], beta=0.3, label_smoothing=eps), train_dataset=dataset
    )
    # (not copy.deepcopy(policy): TRL patched policy.forward, and a deep copy's forward still runs the original)
    reference = make_policy().eval()
    torch.manual_seed(7)
    with torch.no_grad():  # the policy now differs from the reference
        for p in list(policy.token_proj.parameters()) + list(policy.score_out.parameters()):
            p.add_(torch.randn_like(p))
    rows = [dataset[i] for i in range(6)]
    pc, pr = batch_log_probs(policy, policy.processor, rows)
    rc, rr = batch_log_probs(reference, policy.processor, rows)
    assert not torch.allclose(pc - rc, torch.zeros_like(pc))
    expected = dpo_loss(pc - rc, pr - rr, [loss_type], 0.3, eps, chosen_logps=pc)
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    with torch.no_grad():
        got = trainer.compute_loss(trainer.model, batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the contract test
def test_dpo_steps_lower_the_loss_and_leave_the_reference_unchanged(tmp_path, dataset):
    policy = make_policy()
    initial = state_of(policy)
    trainer = ActionDPOTrainer(model=policy, args=make_args(tmp_path, max_steps=6), train_dataset=dataset, eval_dataset=dataset)
    # TRL kept the frozen copy this trainer handed it (it would reload config._name_or_path otherwise)
    assert isinstance(trainer.ref_model, ActionScorerModel) and trainer.ref_model is not policy
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    before = trainer.evaluate()
    assert before["eval_loss"] == pytest.approx(math.log(2), abs=1e-6)  # policy == reference
    assert before["eval_rewards/margins"] == pytest.approx(0.0, abs=1e-6)

    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"] - 1e-3
    assert after["eval_rewards/margins"] > 0 and after["eval_rewards/accuracies"] > 0.5

    # the reference did not move; the policy did
    for key, value in state_of(trainer.ref_model).items():
        assert torch.equal(value, initial[key]), key
    assert any(not torch.equal(v, initial[k]) for k, v in state_of(policy).items())

    # TRL's log() averaged the metrics this trainer appended to self._metrics
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 6
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected", "choice_accuracy", "entropy", "num_candidates"):
        assert key in logs[-1] and f"eval_{key}" in after, key
    assert logs[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert logs[-1]["loss"] < logs[0]["loss"]


def test_precomputed_reference_gives_the_same_losses_as_the_frozen_copy(tmp_path, dataset):
    runs = {}
    for precompute in (False, True):
        trainer = ActionDPOTrainer(
            model=make_policy(seed=3),
            args=make_args(tmp_path / str(precompute), precompute_ref_log_probs=precompute, precompute_ref_batch_size=5),
            train_dataset=dataset,
            eval_dataset=dataset,
        )
        assert (trainer.ref_model is None) == precompute  # precomputed: no reference kept in memory
        assert trainer.reference_log_probs_source == ("precompute" if precompute else "model")
        trainer.train()
        runs[precompute] = ([h["loss"] for h in trainer.state.log_history if "loss" in h], trainer.evaluate()["eval_loss"])
        if precompute:  # the stored columns are the initial policy's log-probs
            assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.train_dataset.column_names)
            rc, rr = batch_log_probs(make_policy(seed=3).eval(), trainer.action_processor, [dataset[i] for i in range(len(dataset))])
            torch.testing.assert_close(torch.tensor(trainer.train_dataset["ref_chosen_logps"]), rc, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(torch.tensor(trainer.train_dataset["ref_rejected_logps"]), rr, rtol=1e-5, atol=1e-6)
    assert runs[True][0] == pytest.approx(runs[False][0], abs=1e-5)
    assert runs[True][1] == pytest.approx(runs[False][1], abs=1e-5)
    assert runs[True][0][-1] < runs[True][0][0]


def test_lora_reference_is_the_base_with_the_adapter_off(tmp_path, dataset):
    from peft import PeftModel

    policy = make_policy(seed=1)
    initial = make_policy(seed=1).eval()
    peft_config = DPOModelArguments(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0).peft_config()
    assert peft_config.task_type == "FEATURE_EXTRACTION" and set(peft_config.modules_to_save) == set(SCORE_HEAD_MODULES)
    trainer = ActionDPOTrainer(
        model=policy, args=make_args(tmp_path, max_steps=5, learning_rate=1e-2), train_dataset=dataset, peft_config=peft_config
    )
    assert isinstance(trainer.model, PeftModel) and trainer.ref_model is None
    assert trainer.reference_log_probs_source == "peft-base"
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("score_out.modules_to_save" in n for n in trainable)

    rows = [dataset[i] for i in range(len(dataset))]
    processor = trainer.action_processor
    ref_c, ref_r = batch_log_probs(initial, processor, rows)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6) and losses[-1] < losses[0]

    model = trainer.model.eval()
    with model.disable_adapter():
        off_c, off_r = batch_log_probs(model, processor, rows)
    on_c, _ = batch_log_probs(model, processor, rows)
    torch.testing.assert_close(off_c, ref_c, rtol=0, atol=1e-6)
    torch.testing.assert_close(off_r, ref_r, rtol=0, atol=1e-6)
    assert not torch.allclose(on_c, ref_c)
    # what the trainer uses as the reference is exactly that
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    tc, tr = trainer.compute_ref_log_probs(trainer.model, batch)
    torch.testing.assert_close(tc, ref_c, rtol=0, atol=1e-6)
    torch.testing.assert_close(tr, ref_r, rtol=0, atol=1e-6)


def test_explicit_reference_model_activation_checkpointing_and_checkpoints(tmp_path, dataset):
    # seed 6: on the shared tiny vocabulary its first loss is 2.1e-4 from log 2 (seed 5 fell to 5.5e-5, under the check below)
    reference = make_policy(seed=6)
    ref_state = state_of(reference)
    args = make_args(tmp_path, max_steps=2, activation_checkpointing=True, save_strategy="steps", save_steps=2)
    trainer = ActionDPOTrainer(model=make_policy(seed=0), ref_model=reference, args=args, train_dataset=dataset)
    assert trainer.ref_model is reference
    trainer.train()
    assert trainer.model.is_activation_checkpointing  # Trainer turned it on for training
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[0]["loss"] != pytest.approx(math.log(2), abs=1e-4)  # a different reference
    for key, value in state_of(reference).items():
        assert torch.equal(value, ref_state[key]), key
    # TRL's _save_checkpoint (model card included) wrote a loadable policy
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (tmp_path / "out" / "README.md").is_file() and (checkpoint / "model.safetensors").is_file()
    reloaded = ActionScorerModel.from_pretrained(checkpoint)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def test_streaming_dataset_and_padding_to_a_multiple(tmp_path, dataset):
    trainer = ActionDPOTrainer(
        model=make_policy(), args=make_args(tmp_path, max_steps=2, pad_to_multiple_of=8),
        train_dataset=dataset.to_iterable_dataset(),
    )
    batch = trainer.data_collator([dataset[i] for i in range(3)])
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["action_input_ids"].shape[1] % 8 == 0
    trainer.train()
    assert trainer.state.global_step == 2


def test_the_frozen_copy_of_a_model_trl_already_patched_is_independent(tmp_path, dataset):
    """TRL patches model.forward with a closure over the original forward: a plain deep copy of a
    patched model would keep computing with the original's weights."""
    policy = make_policy()
    ActionDPOTrainer(model=policy, args=make_args(tmp_path), train_dataset=dataset)  # patches policy.forward
    assert "forward" in policy.__dict__
    trainer = ActionDPOTrainer(model=policy, args=make_args(tmp_path), train_dataset=dataset)
    rows = [dataset[i] for i in range(4)]
    before = batch_log_probs(trainer.ref_model, policy.processor, rows)
    with torch.no_grad():
        policy.score_out.weight.add_(1.0)
        policy.token_proj.weight.mul_(5.0)
    after = batch_log_probs(trainer.ref_model, policy.processor, rows)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert not torch.allclose(batch_log_probs(policy, policy.processor, rows)[0], before[0])


def test_sync_ref_model_moves_the_reference(tmp_path, dataset):
    trainer = ActionDPOTrainer(
        model=make_policy(), args=make_args(tmp_path, max_steps=2, sync_ref_model=True, ref_model_sync_steps=1), train_dataset=dataset
    )
    ref_before = state_of(trainer.ref_model)
    trainer.train()
    assert any(not torch.equal(v, ref_before[k]) for k, v in state_of(trainer.ref_model).items())


# --------------------------------------------------------------------------- unsupported options
@pytest.mark.parametrize(
    "option, value",
    [
        ("loss_type", ["exo_pair"]),
        ("loss_type", ["sigmoid", "apo_zero"]),
        ("loss_type", ["bco_pair"]),
        ("use_liger_kernel", True),
        ("padding_free", True),
        ("ld_alpha", 0.5),
        ("use_weighting", True),
        ("f_divergence_type", "js_divergence"),
        ("max_length", 512),
        ("truncation_mode", "keep_end"),
        ("label_smoothing", 0.1),  # with loss_type sigmoid: TRL 1.16 ignores it there
        ("activation_offloading", True),
    ],
)
def test_unsupported_options_fail_loudly_naming_the_option(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        make_args(tmp_path, **{option: value})


def test_robust_label_smoothing_range_and_beta(tmp_path):
    with pytest.raises(ValueError, match="label_smoothing"):
        make_args(tmp_path, loss_type=["robust"], label_smoothing=0.5)
    with pytest.raises(ValueError, match="beta"):
        make_args(tmp_path, beta=0.0)
    assert make_args(tmp_path, loss_type=["robust"], label_smoothing=0.1).label_smoothing == 0.1


def test_plain_trl_config_is_checked_by_the_trainer(tmp_path, dataset):
    # TRL's own DPOConfig: its max_length=1024 default is a token cap this trainer does not use
    plain = DPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", bf16=False)
    with pytest.raises(ValueError, match="max_length"):
        ActionDPOTrainer(model=make_policy(), args=plain, train_dataset=dataset)
    plain = DPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", bf16=False, max_length=None, max_steps=1,
                      activation_checkpointing=False, disable_tqdm=True)
    trainer = ActionDPOTrainer(model=make_policy(), args=plain, train_dataset=dataset)
    trainer.train()
    with pytest.raises(ValueError, match="compute_metrics"):
        ActionDPOTrainer(model=make_policy(), args=make_args(tmp_path), train_dataset=dataset, compute_metrics=lambda p: {})


# --------------------------------------------------------------------------- data
def test_collator_finds_indices_from_strings_and_carries_reference_log_probs():
    rows = [{k: v for k, v in r.items() if not k.endswith("_index")} for r in make_rows(4)]
    collator = ActionDPODataCollator(make_policy().processor)
    batch = collator(rows)
    assert batch["chosen_index"].tolist() == [r["available_actions"].index(r["chosen"]) for r in rows]
    assert batch["rejected_index"].tolist() == [r["available_actions"].index(r["rejected"]) for r in rows]
    assert batch["num_candidates"].tolist() == [len(r["available_actions"]) for r in rows]
    assert "ref_chosen_logps" not in batch
    with_ref = [dict(r, ref_chosen_logps=-1.0, ref_rejected_logps=-2.0) for r in rows]
    batch = collator(with_ref)
    assert batch["ref_chosen_logps"].dtype == torch.float32 and batch["ref_rejected_logps"].tolist() == [-2.0] * 4
    # IL-style column names are accepted
    il_style = [{"observation": r["prompt"], "candidates": r["available_actions"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    assert collator(il_style)["chosen_index"].tolist() == collator(rows)["chosen_index"].tolist()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(chosen="click[nowhere]", chosen_index=None), "not among its available_actions"),
        (lambda r: r.update(rejected=r["chosen"], rejected_index=r["chosen_index"]), "same action"),
        (lambda r: r.update(chosen_index=0), "points at"),
        (lambda r: r.update(chosen_index=99), "out of range"),
        (lambda r: r.update(available_actions=[]), "non-empty"),
        (lambda r: r.update(prompt=None), "prompt must be"),
    ],
)
def test_bad_rows_are_reported_with_their_number(change, message):
    rows = make_rows(4)
    change(rows[2])
    with pytest.raises(DataFileError, match=message) as err:
        check_preference_dataset(datasets.Dataset.from_list(rows), "train")
    assert "row 2" in str(err.value)


def test_missing_columns_are_named():
    with pytest.raises(DataFileError, match="rejected"):
        check_preference_dataset(datasets.Dataset.from_list([{"prompt": "x", "chosen": "a", "available_actions": ["a"]}]))
