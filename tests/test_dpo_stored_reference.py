"""DPO with the reference log-probs that `webshop-trl build-preferences` stored with the pairs.

Pairs are built from hand-written trajectories with the tiny policy (conftest's
``tiny_checkpoint``) as the reference; the same checkpoint then starts DPO. The stored
``ref_chosen_logps`` / ``ref_rejected_logps`` must be what TRL's own precompute pass computes, and
training on them must give TRL-precompute's losses; a different checkpoint, processor or precision
must be detected ("true": a clear error; "auto": TRL's path).
"""

from __future__ import annotations

import math

import datasets
import pytest
import torch
import yaml

from webshop_trl.policy import ActionScorerModel
from webshop_trl.preferences import (
    REFERENCE_LOG_PROB_COLUMNS,
    PreferenceBuildConfig,
    build_preferences,
    save_preferences,
    weights_fingerprint,
)
from webshop_trl.scripts import dpo as dpo_script
from webshop_trl.trainers.dpo_config import DPOModelArguments
from webshop_trl.trainers.dpo_data import find_build_info
from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer
from webshop_trl.trajectories import Step, Trajectory, write_trajectories

from test_dpo_trainer import PAGES, make_args  # noqa: E402  (tests/ is on sys.path under pytest)
from tiny_policy import save_tiny_policy, tiny_policy

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS = ["click[item - red running shoes]", "click[item - blue cotton shirt]", "click[item - black leather dress]",
         "click[item - green shirt]", "click[item - white shoes pack of 2]"]


def trajectories(n: int = 12) -> list[Trajectory]:
    """``n`` goals: a search, a results page (choose an item), an item page (choose an option or buy)."""
    out = []
    for g in range(n):
        instruction, item_page = PAGES[g % len(PAGES)]
        results = ["click[back to search]", "click[next >]"] + ITEMS[g % 3: g % 3 + 3]
        out.append(Trajectory(
            goal={"index": g, "kind": "synthetic"},
            steps=[
                Step(f"WebShop [SEP] Instruction: [SEP] {instruction} [SEP] search", ["search[<query>]"], "search[x]"),
                Step(f"Instruction: [SEP] {instruction} [SEP] page {g % 3 + 1} total results {g}", results, results[2 + g % 2]),
                Step(f"Instruction: [SEP] {instruction} [SEP] price $ {g}.00 features reviews", item_page,
                     item_page[-1 - g % 2]),
            ],
            final_reward=1.0,
            source="expert",
        ))
    return out


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp("stored-reference")
    demos = folder / "demos.jsonl"
    write_trajectories(demos, trajectories())
    built = build_preferences(PreferenceBuildConfig([str(demos)], reference_model=str(tiny_checkpoint), eval_fraction=0.25,
                                                    batch_size=5))
    return save_preferences(built, folder / "pairs")


@pytest.fixture(scope="module")
def pairs(pairs_dir):
    return datasets.load_from_disk(str(pairs_dir))


def policy(path, **processor_overrides):
    model = ActionScorerModel.from_pretrained(path)
    if processor_overrides:
        from webshop_trl.policy import ActionScoringProcessor

        model.attach_processor(ActionScoringProcessor.from_pretrained(path, **processor_overrides))
    return model.train()


def losses_of(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_build_stores_the_reference_log_probs_and_what_made_them(pairs, pairs_dir, tiny_checkpoint):
    reference = ActionScorerModel.from_pretrained(tiny_checkpoint).eval()
    info = find_build_info(pairs["train"])
    assert info is not None and info["reference_log_probs"]["weights_fingerprint"] == weights_fingerprint(reference)
    record = info["reference_log_probs"]
    assert record["reference"] == str(tiny_checkpoint) and record["precision"] == "fp32" and record["bf16"] is False
    assert record["processor"]["max_observation_length"] == 96 and "vocab_sha256" in record["processor"]
    assert list(record["weights_sha256"]) == ["model.safetensors"]
    assert "## Reference log-probabilities" in (pairs_dir / "README.md").read_text()
    for split in ("train", "eval"):
        ds = pairs[split]
        assert set(REFERENCE_LOG_PROB_COLUMNS) <= set(ds.column_names) and ds.features["ref_chosen_logps"].dtype == "float32"
        scores = reference.score(ds["prompt"], ds["available_actions"])
        chosen = torch.tensor([float(lp[i]) for lp, i in zip(scores, ds["chosen_index"])])
        rejected = torch.tensor([float(lp[i]) for lp, i in zip(scores, ds["rejected_index"])])
        torch.testing.assert_close(torch.tensor(ds["ref_chosen_logps"]), chosen, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.tensor(ds["ref_rejected_logps"]), rejected, rtol=1e-5, atol=1e-5)


def test_stored_log_probs_equal_trls_precompute_and_give_the_same_losses(pairs, tiny_checkpoint, tmp_path):
    runs = {}
    for mode, precompute in (("false", True), ("true", False)):
        trainer = ActionDPOTrainer(
            model=policy(tiny_checkpoint),
            args=make_args(tmp_path / mode, max_steps=5, learning_rate=1e-2, precompute_ref_log_probs=precompute,
                           precompute_ref_batch_size=3, reference_log_probs_from_dataset=mode),
            train_dataset=pairs["train"], eval_dataset=pairs["eval"],
        )
        assert trainer.ref_model is None and trainer.precompute_ref_logps  # no reference model in memory either way
        if mode == "false":  # TRL computed the columns itself, with the policy, before training
            assert trainer.reference_log_probs_source == "precompute"
            for split, ds in (("train", trainer.train_dataset), ("eval", trainer.eval_dataset)):
                for column in REFERENCE_LOG_PROB_COLUMNS:
                    torch.testing.assert_close(torch.tensor(ds[column]), torch.tensor(pairs[split][column]), rtol=1e-5, atol=1e-5)
        else:
            assert trainer.reference_log_probs_source == "dataset" and not trainer.args.precompute_ref_log_probs
            assert trainer.train_dataset["ref_chosen_logps"] == pairs["train"]["ref_chosen_logps"]  # as stored
        trainer.train()
        runs[mode] = (losses_of(trainer), trainer.evaluate()["eval_loss"])
    assert len(runs["true"][0]) == 5 and runs["true"][0][0] == pytest.approx(math.log(2), abs=1e-5)
    assert runs["true"][0] == pytest.approx(runs["false"][0], abs=1e-5)
    assert runs["true"][1] == pytest.approx(runs["false"][1], abs=1e-5)
    assert runs["true"][0][-1] < runs["true"][0][0]


def test_another_reference_is_detected(pairs, tiny_checkpoint, tmp_path):
    other = save_tiny_policy(tmp_path / "other", seed=1, use_value_head=False)
    with pytest.raises(ValueError, match=r"reference_log_probs_from_dataset is true.*weights: the pairs were scored by"):
        ActionDPOTrainer(model=policy(other), args=make_args(tmp_path, reference_log_probs_from_dataset="true"),
                         train_dataset=pairs["train"])
    # auto: TRL's precompute with the policy, not the stored columns
    trainer = ActionDPOTrainer(model=policy(other), args=make_args(tmp_path, precompute_ref_log_probs=True),
                               train_dataset=pairs["train"])
    assert trainer.reference_log_probs_source == "precompute" and "weights" in trainer.reference_log_probs_mismatches[0]
    assert not torch.allclose(torch.tensor(trainer.train_dataset["ref_chosen_logps"]), torch.tensor(pairs["train"]["ref_chosen_logps"]))
    # auto without precompute: the frozen copy, and the stored columns are dropped
    trainer = ActionDPOTrainer(model=policy(other), args=make_args(tmp_path), train_dataset=pairs["train"])
    assert trainer.reference_log_probs_source == "model" and trainer.ref_model is not None
    assert not set(REFERENCE_LOG_PROB_COLUMNS) & set(trainer.train_dataset.column_names)
    # the same weights scored differently: processor settings, precision
    with pytest.raises(ValueError, match="processor setting max_observation_length: 96 when the pairs were scored, 64"):
        ActionDPOTrainer(model=policy(tiny_checkpoint, max_observation_length=64),
                         args=make_args(tmp_path, reference_log_probs_from_dataset="true"), train_dataset=pairs["train"])
    with pytest.raises(ValueError, match="precision: the pairs were scored in fp32, this run's reference runs in bf16"):
        ActionDPOTrainer(model=policy(tiny_checkpoint), args=make_args(tmp_path, bf16=True, reference_log_probs_from_dataset="true"),
                         train_dataset=pairs["train"])
    # no build info (a dataset built in memory) and no columns
    in_memory = datasets.Dataset.from_list(list(pairs["train"]))
    with pytest.raises(ValueError, match="no build_info.json"):
        ActionDPOTrainer(model=policy(tiny_checkpoint), args=make_args(tmp_path, reference_log_probs_from_dataset="true"),
                         train_dataset=in_memory)
    with pytest.raises(ValueError, match="no ref_chosen_logps"):
        ActionDPOTrainer(model=policy(tiny_checkpoint), args=make_args(tmp_path, reference_log_probs_from_dataset="true"),
                         train_dataset=pairs["train"].remove_columns(list(REFERENCE_LOG_PROB_COLUMNS)))


def test_lora_uses_the_stored_log_probs_of_its_base(pairs, tiny_checkpoint, tmp_path):
    peft_config = DPOModelArguments(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0).peft_config()
    trainer = ActionDPOTrainer(model=policy(tiny_checkpoint), args=make_args(tmp_path, max_steps=2, reference_log_probs_from_dataset="true"),
                               train_dataset=pairs["train"], peft_config=peft_config)
    assert trainer.reference_log_probs_source == "dataset" and trainer.ref_model is None
    trainer.train()
    assert losses_of(trainer)[0] == pytest.approx(math.log(2), abs=1e-5)  # the adapter starts at zero: policy == base


def test_value_head_does_not_enter_the_fingerprint(tmp_path):
    """An IL checkpoint with a value head, loaded without it (DPO recipes: use_value_head false), has the
    same fingerprint: the value head does not score actions."""
    path = save_tiny_policy(tmp_path / "with-value-head", use_value_head=True)
    with_head = ActionScorerModel.from_pretrained(path)
    without = ActionScorerModel.from_pretrained(path, use_value_head=False)
    assert with_head.value_head is not None and without.value_head is None
    assert weights_fingerprint(with_head) == weights_fingerprint(without)
    assert weights_fingerprint(with_head) != weights_fingerprint(tiny_policy(1))


def test_script_uses_the_stored_log_probs_of_a_build_preferences_folder(pairs_dir, tiny_checkpoint, tmp_path):
    from test_dpo_script import parse, write_recipe

    recipe = write_recipe(tmp_path, tiny_checkpoint, pairs_dir, max_steps=2, precompute_ref_log_probs=True)
    script_args, training_args, model_args = parse("--config", recipe)
    assert training_args.reference_log_probs_from_dataset == "auto"
    trainer = dpo_script.main(script_args, training_args, model_args)
    assert trainer.reference_log_probs_source == "dataset" and trainer.ref_model is None
    assert losses_of(trainer)[0] == pytest.approx(math.log(2), abs=1e-5)
    # YAML booleans and CLI strings both parse; a bad value fails
    recipe.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()), "reference_log_probs_from_dataset": False}))
    assert parse("--config", recipe)[1].reference_log_probs_from_dataset == "false"
    assert parse("--config", recipe, "--reference_log_probs_from_dataset", "true")[1].reference_log_probs_from_dataset == "true"
    with pytest.raises((ValueError, SystemExit)):
        parse("--config", recipe, "--reference_log_probs_from_dataset", "maybe")
