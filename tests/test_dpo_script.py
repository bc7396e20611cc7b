"""The DPO entry script (`python -m webshop_trl.scripts.dpo --config recipe.yaml`) and its recipes.

The script runs end to end on a tiny random policy saved to disk (the "IL checkpoint") and a tiny
preference DatasetDict saved with save_to_disk (what `webshop-trl build-preferences` writes), full
fine-tuning and LoRA. Every DPO recipe must parse with TrlParser against the pinned versions.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch
import yaml

from webshop_trl.policy import ActionScorerModel
from webshop_trl.scripts import dpo as dpo_script
from webshop_trl.trainers.dpo_config import ActionDPOConfig, DPOModelArguments, DPOScriptArguments
from webshop_trl.trainers.dpo_data import ActionDPODataCollator

from test_dpo_trainer import make_policy, make_rows  # noqa: E402  (tests/ is on sys.path under pytest)

REPO = Path(__file__).resolve().parents[1]
DPO_RECIPES = sorted(REPO.glob("recipes/*/dpo/*.yaml"))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def checkpoint_and_pairs(tmp_path):
    policy_dir = tmp_path / "il-policy"
    make_policy(seed=2).save_pretrained(policy_dir)
    rows = make_rows(24)
    pairs = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:16]), "eval": datasets.Dataset.from_list(rows[16:])})
    pairs_dir = tmp_path / "pairs"
    pairs.save_to_disk(str(pairs_dir))
    return policy_dir, pairs_dir


def write_recipe(tmp_path, policy_dir, pairs_dir, **extra) -> Path:
    recipe = {
        "model_name_or_path": str(policy_dir), "use_value_head": False,
        "dataset_name": str(pairs_dir), "dataset_train_split": "train", "dataset_test_split": "eval",
        "loss_type": ["sigmoid"], "beta": 0.1, "max_length": None,
        "output_dir": str(tmp_path / "out"), "seed": 0, "max_steps": 3, "learning_rate": 3.0e-3,
        "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, "bf16": False, "use_cpu": True,
        "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1, "report_to": "none", "disable_tqdm": True,
    }
    recipe.update(extra)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def parse(*argv):
    return dpo_script.make_parser().parse_args_and_config(args=[str(a) for a in argv])


def test_script_trains_and_saves_a_loadable_policy(tmp_path, checkpoint_and_pairs):
    policy_dir, pairs_dir = checkpoint_and_pairs
    recipe = write_recipe(tmp_path, policy_dir, pairs_dir)
    script_args, training_args, model_args = parse("--config", recipe, "--max_steps", "2", "--beta", "0.25")
    assert training_args.max_steps == 2 and training_args.beta == 0.25  # CLI overrides the recipe
    assert isinstance(training_args, ActionDPOConfig) and isinstance(model_args, DPOModelArguments)
    trainer = dpo_script.main(script_args, training_args, model_args)
    out = Path(training_args.output_dir)
    assert {"config.json", "model.safetensors", "action_scoring_processor.json", "eval_results.json"} <= {p.name for p in out.iterdir()}
    reloaded = ActionScorerModel.from_pretrained(out)
    assert reloaded.processor is not None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and "rewards/margins" in logs[-1]


def test_script_with_lora_saves_the_adapter_and_the_merged_policy(tmp_path, checkpoint_and_pairs):
    policy_dir, pairs_dir = checkpoint_and_pairs
    recipe = write_recipe(tmp_path, policy_dir, pairs_dir, use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                          precompute_ref_log_probs=True, learning_rate=1.0e-2)
    trainer = dpo_script.main(*parse("--config", recipe))
    out = Path(trainer.args.output_dir)
    assert (out / dpo_script.ADAPTER_DIR / "adapter_config.json").is_file()
    assert (out / dpo_script.ADAPTER_DIR / "action_scoring_processor.json").is_file()
    merged = ActionScorerModel.from_pretrained(out).eval()
    rows = make_rows(24)[16:]
    batch = ActionDPODataCollator(merged.processor)(rows)
    inputs = {k: v for k, v in batch.items() if k not in ("chosen_index", "rejected_index")}
    peft_model = trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).log_probs, peft_model(**inputs).log_probs, rtol=1e-4, atol=1e-5)
        with peft_model.disable_adapter():  # the trainer's model is still the PEFT model, adapter intact
            base = peft_model(**inputs).log_probs
    initial = ActionScorerModel.from_pretrained(policy_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(base, initial(**inputs).log_probs, rtol=0, atol=1e-6)


def test_script_data_options(tmp_path, checkpoint_and_pairs):
    from webshop_trl.errors import DataFileError
    from webshop_trl.trainers.dpo_data import load_preference_datasets

    _, pairs_dir = checkpoint_and_pairs
    args = ActionDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    train, eval_ = load_preference_datasets(DPOScriptArguments(dataset_name=str(pairs_dir), max_train_samples=5), args)
    assert len(train) == 5 and len(eval_) == 8
    train, eval_ = load_preference_datasets(DPOScriptArguments(dataset_name=str(pairs_dir), dataset_test_split=None), args)
    assert len(train) == 16 and eval_ is None
    with pytest.raises(DataFileError, match="no split 'test'"):
        load_preference_datasets(DPOScriptArguments(dataset_name=str(pairs_dir), dataset_test_split="test"), args)
    with pytest.raises(DataFileError, match="not a dataset folder"):
        load_preference_datasets(DPOScriptArguments(dataset_name=str(tmp_path / "missing")), args)


@pytest.mark.parametrize("recipe", DPO_RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_dpo_recipes_parse_with_trl_parser(recipe):
    # GPU recipes (bf16 without use_cpu) are checked here as a CPU run of the same keys would be
    on_cpu = [] if torch.cuda.is_available() or "use_cpu" in yaml.safe_load(recipe.read_text()) else ["--use_cpu", "true"]
    script_args, training_args, model_args = parse("--config", recipe, *on_cpu)
    assert isinstance(training_args, ActionDPOConfig)
    assert script_args.dataset_name and model_args.model_name_or_path
    assert training_args.max_length is None and not training_args.gradient_checkpointing
    assert training_args.ddp_find_unused_parameters is False  # DDP: see ActionDPOConfig.ddp_find_unused_parameters
    if model_args.use_peft:
        config = model_args.peft_config()
        assert config.task_type == "FEATURE_EXTRACTION" and "score_out" in config.modules_to_save


def test_the_four_dpo_recipes_exist_with_readmes():
    names = {str(p.relative_to(REPO)) for p in DPO_RECIPES}
    assert {
        "recipes/minilm/dpo/config_full.yaml", "recipes/minilm/dpo/config_lora.yaml",
        "recipes/minilm/dpo/config_smoke.yaml", "recipes/bert-base-uncased/dpo/config_full.yaml",
    } <= names
    for folder in ("recipes/minilm/dpo", "recipes/bert-base-uncased/dpo"):
        readme = (REPO / folder / "README.md").read_text()
        assert "accelerate launch --config_file recipes/accelerate_configs/" in readme and "-m webshop_trl.scripts.dpo" in readme


def test_unknown_and_unsupported_recipe_keys_fail(tmp_path):
    base = yaml.safe_load((REPO / "recipes/minilm/dpo/config_smoke.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base, "max_prompt_length": 128}))  # a key DPOConfig 1.16 dropped
    with pytest.raises(ValueError, match="max_prompt_length"):
        parse("--config", bad)
    bad.write_text(yaml.safe_dump({**base, "loss_type": ["nca_pair"]}))
    with pytest.raises(ValueError, match="loss_type"):
        parse("--config", bad)
    bad.write_text(yaml.safe_dump({**base, "lora_task_type": "CAUSAL_LM"}))
    with pytest.raises(ValueError, match="lora_task_type"):
        parse("--config", bad)
