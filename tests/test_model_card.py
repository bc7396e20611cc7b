"""Model cards: ``--push_to_hub`` of the IL and DPO scripts against a local Hub (tests/hub_server.py).

The scripts run in child processes pointed at the local server by ``HF_ENDPOINT`` (as in
tests/test_preferences_hub.py). The card (README.md) is written into output_dir at the end of
training and pushed with the policy; it records the data (path, sizes, build_info.json), the base
checkpoint, the recipe and the final metrics, under YAML front matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from transformers import BertConfig, BertModel

from hub_server import FakeHub
from webshop_trl.trainers.model_card import hub_base_model, recipe_values, render_model_card

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
TOKEN = "hf_local_test_token"


@pytest.fixture(scope="module")
def hub():
    with FakeHub(token=TOKEN) as server:
        yield server


def start_script(module: str, recipe: Path, env: dict) -> subprocess.Popen:
    env = {**os.environ, **env, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", module, "--config", str(recipe)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def pushed_runs(tmp_path_factory, hub):
    """The IL and DPO pushes, started together (each test waits for its own)."""
    root = tmp_path_factory.mktemp("cards")
    il = prepare_il(root / "il")
    dpo = prepare_dpo(root / "dpo")
    procs = {name: start_script(module, info["recipe"], hub.env(root / f"hf-home-{name}"))
             for name, module, info in (("il", "webshop_trl.scripts.il", il), ("dpo", "webshop_trl.scripts.dpo", dpo))}
    yield {"il": (il, procs["il"]), "dpo": (dpo, procs["dpo"])}
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:card.index("\n---\n", 4)])


def test_render_and_base_model_chain(tmp_path):
    assert hub_base_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_base_model(None) is None
    local = tmp_path / "policy"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"encoder_name_or_path": "bert-base-uncased"}))
    assert hub_base_model(local) == "bert-base-uncased"  # a local policy: its encoder
    (local / "README.md").write_text("---\nbase_model: tester/webshop-il\n---\n# x\n")
    assert hub_base_model(local) == "tester/webshop-il"  # a local copy of a pushed policy: its card
    card = render_model_card(method="ppo", model_name="m", base_model=str(local), base_model_hub_id="tester/webshop-il",
                             datasets=[{"name": "tester/prefs", "source": "hub", "pairs": 3}],
                             hyperparameters={"training": {"learning_rate": 1e-5}}, metrics={"last update": {"update": 4}})
    meta = front_matter(card)
    assert meta["base_model"] == "tester/webshop-il" and meta["datasets"] == ["tester/prefs"]
    assert {"webshop", "trl", "ppo"} <= set(meta["tags"]) and meta["library_name"]
    assert "| learning_rate | 1e-05 |" in card and "| update | 4 |" in card
    from webshop_trl.trainers.ppo_config import PPOConfig

    assert recipe_values(PPOConfig(num_updates=7), ("seed",)) == {"seed": 42, "num_updates": 7}


def prepare_il(tmp_path: Path) -> dict:
    from test_il import COLORS, ITEMS, make_tokenizer, make_trajectory
    from webshop_trl.trajectories import write_trajectories

    tmp_path.mkdir(parents=True)
    encoder = tmp_path / "encoder"
    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    (encoder / "README.md").write_text("---\nbase_model: google/bert_uncased_L-2_H-128_A-2\n---\n")  # a local copy's card
    demos_dir = tmp_path / "demos"
    demos_dir.mkdir()
    demos = demos_dir / "expert.jsonl"
    write_trajectories(demos, [make_trajectory(1500 + i, COLORS[i % 4], ITEMS[i % 3]) for i in range(10)])
    (demos_dir / "build_info.json").write_text(json.dumps({"builder": "webshop-trl demos expert", "split": "train", "noise": 0.1}))
    out = tmp_path / "il-out"
    recipe = tmp_path / "il.yaml"
    recipe.write_text(yaml.safe_dump({
        "encoder_name_or_path": str(encoder), "dataset_paths": [str(demos)], "eval_fraction": 0.2, "seed": 3,
        "max_observation_length": 96, "max_action_length": 16, "max_steps": 2, "learning_rate": 3.0e-3,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "save_strategy": "no", "eval_strategy": "no",
        "logging_steps": 1, "report_to": "none", "use_cpu": True, "disable_tqdm": True, "output_dir": str(out),
        "push_to_hub": True, "hub_model_id": "tester/webshop-il",
    }))
    return {"recipe": recipe, "encoder": encoder, "demos": demos, "out": out}


def test_il_push_to_hub_writes_and_uploads_the_card(pushed_runs, hub):
    info, proc = pushed_runs["il"]
    encoder, demos, out = info["encoder"], info["demos"], info["out"]
    wait(proc)
    assert not hub.unhandled and not hub.errors, (hub.unhandled, hub.errors)

    files = hub.files("tester/webshop-il", repo_type="model")
    assert {"README.md", "config.json", "model.safetensors", "action_scoring_processor.json"} <= set(files)
    card = files["README.md"].decode()
    assert card == (out / "README.md").read_text()  # the card in output_dir is the one pushed
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["base_model"] == "google/bert_uncased_L-2_H-128_A-2"
    assert {"webshop", "trl", "il"} <= set(meta["tags"])
    assert str(demos) in card and "trajectories: 10" in card and "train pages: " in card
    assert '"builder": "webshop-trl demos expert"' in card  # how the data was built
    assert f"Started from `{encoder}`" in card
    assert "| learning_rate | 0.003 |" in card and "| max_steps | 2 |" in card and "| seed | 3 |" in card
    train = json.loads((out / "train_results.json").read_text())
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert f"| train_loss | {train['train_loss']:.6g} |" in card and f"| eval_loss | {evaluation['eval_loss']:.6g} |" in card
    assert f"| train_samples | {train['train_samples']} |" in card


def prepare_dpo(tmp_path: Path) -> dict:
    from test_dpo_trainer import make_rows
    from tiny_policy import tiny_policy

    tmp_path.mkdir(parents=True)
    policy = tmp_path / "il-policy"
    tiny_policy(seed=2).save_pretrained(policy)  # config: encoder_name_or_path "tiny-random"
    rows = make_rows(24)
    for i, row in enumerate(rows):
        row["goal_index"] = i // 4
    pairs = tmp_path / "pairs"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:16]), "eval": datasets.Dataset.from_list(rows[16:])}).save_to_disk(str(pairs))
    (pairs / "build_info.json").write_text(json.dumps({"format": "webshop-trl/preferences/v1", "rejection": "uniform"}))
    out = tmp_path / "dpo-out"
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_name_or_path": str(policy), "use_value_head": False, "dataset_name": str(pairs),
        "dataset_train_split": "train", "dataset_test_split": "eval", "loss_type": ["sigmoid"], "beta": 0.25,
        "max_length": None, "output_dir": str(out), "seed": 0, "max_steps": 2, "learning_rate": 3.0e-3,
        "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, "bf16": False, "use_cpu": True,
        "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1, "report_to": "none", "disable_tqdm": True,
        "push_to_hub": True, "hub_model_id": "tester/webshop-dpo",
    }))
    return {"recipe": recipe, "policy": policy, "pairs": pairs, "out": out}


def test_dpo_push_to_hub_writes_and_uploads_the_card(pushed_runs, hub):
    info, proc = pushed_runs["dpo"]
    policy, pairs, out = info["policy"], info["pairs"], info["out"]
    wait(proc)
    assert not hub.unhandled and not hub.errors, (hub.unhandled, hub.errors)

    files = hub.files("tester/webshop-dpo", repo_type="model")
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    card = files["README.md"].decode()
    assert card == (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == "tiny-random" and {"webshop", "trl", "dpo"} <= set(meta["tags"])
    assert "datasets" not in meta  # a local dataset is named in the body, not as a Hub id
    assert str(pairs) in card and "train pairs: 16" in card and "eval pairs: 8" in card and "train goals: 4" in card
    assert '"rejection": "uniform"' in card
    assert f"Started from `{policy}`" in card and "| beta | 0.25 |" in card and "| loss_type |" in card
    train = json.loads((out / "train_results.json").read_text())
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert f"| train_loss | {train['train_loss']:.6g} |" in card
    assert f"| eval_rewards/accuracies | {evaluation['eval_rewards/accuracies']:.6g} |" in card
