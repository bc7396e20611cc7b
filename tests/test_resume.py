"""``--resume_from_checkpoint`` after a killed run: the real entry scripts, killed with SIGKILL.

Each scenario runs the script three times in child processes (one thread each, so the float
results do not depend on thread scheduling): an uninterrupted run, a run that is killed, and the
rerun with ``--resume_from_checkpoint true``. The resumed run must continue from the last complete
checkpoint's global_step, reach max_steps and end with the very weights of the uninterrupted run.

* IL: killed from outside (SIGKILL) once its first checkpoint is complete (its steps are slowed
  down by a wrapper so the kill lands mid-run).
* DPO: killed (SIGKILL, by itself) *while saving* its second checkpoint, after the weights and
  optimizer are written and before trainer_state.json: the rerun must skip that broken folder and
  continue from the first checkpoint.
* PPO: killed from outside after its first checkpoint; the rerun continues the update count and
  logs each update once (the environments' sessions are not checkpointed, so PPO's weights are not
  compared with an uninterrupted run's; see the PPOTrainer docstring).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

from hub_server import FakeHub
from webshop_trl.trainers.checkpoints import (
    CheckpointNotFoundError,
    last_checkpoint,
    resolve_resume_from_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Runs a script module as __main__ with two test hooks: a sleep after each training step (so an
# outside kill lands mid-run) and a SIGKILL of itself in the middle of saving checkpoint-N.
WRAPPER = r"""
import os, runpy, signal, sys, time
module = sys.argv[1]
sys.argv = [module] + sys.argv[2:]
sleep = float(os.environ.get("TEST_STEP_SLEEP", "0"))
kill_at = int(os.environ.get("TEST_KILL_WHILE_SAVING", "0"))
import transformers
if sleep:
    step = transformers.Trainer.training_step
    def training_step(self, *a, **k):
        out = step(self, *a, **k)
        time.sleep(sleep)
        return out
    transformers.Trainer.training_step = training_step
if kill_at:
    save_rng = transformers.Trainer._save_rng_state
    def _save_rng_state(self, output_dir):  # called after weights + optimizer, before trainer_state.json
        if self.state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return save_rng(self, output_dir)
    transformers.Trainer._save_rng_state = _save_rng_state
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def child_env(**extra) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start(module: str, recipe: Path, *args, cwd: Path, **env) -> subprocess.Popen:
    cmd = [sys.executable, "-c", WRAPPER, module, "--config", str(recipe), *map(str, args)]
    return subprocess.Popen(cmd, cwd=cwd, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def kill_after_checkpoint(proc: subprocess.Popen, output_dir: Path, timeout: float = 90) -> None:
    """SIGKILL ``proc`` as soon as output_dir holds a complete checkpoint."""
    deadline = time.monotonic() + timeout
    while last_checkpoint(output_dir) is None:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before a checkpoint was written:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), (name, (wa[name] - wb[name]).abs().max())


def global_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]


# --------------------------------------------------------------------------- the resolver
def test_resume_true_needs_a_complete_checkpoint(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no complete checkpoint"):
        resolve_resume_from_checkpoint("true", tmp_path / "missing")
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # cut by a kill
    (tmp_path / "checkpoint-10").mkdir()  # killed before trainer_state.json
    assert resolve_resume_from_checkpoint("true", tmp_path) == str(tmp_path / "checkpoint-2")
    assert resolve_resume_from_checkpoint(True, tmp_path) == str(tmp_path / "checkpoint-2")
    for off in (None, False, "false", ""):
        assert resolve_resume_from_checkpoint(off, tmp_path) is None
    assert resolve_resume_from_checkpoint(str(tmp_path / "checkpoint-2"), tmp_path) == str(tmp_path / "checkpoint-2")
    with pytest.raises(CheckpointNotFoundError, match="not a complete checkpoint"):
        resolve_resume_from_checkpoint(str(tmp_path / "checkpoint-10"), tmp_path)
    for name in ("checkpoint-2",):
        (tmp_path / name / "trainer_state.json").unlink()
    with pytest.raises(CheckpointNotFoundError, match="only incomplete ones"):
        resolve_resume_from_checkpoint("true", tmp_path)


def test_cli_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    from webshop_trl.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"dataset_paths": [str(tmp_path / "none.jsonl")], "output_dir": str(tmp_path / "out"),
                                      "use_cpu": True, "report_to": "none"}))
    assert main(["train", "il", "--config", str(recipe), "--resume_from_checkpoint", "true"]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint-<step> folder in" in err and str(tmp_path / "out") in err


# --------------------------------------------------------------------------- IL
@pytest.fixture(scope="module")
def il_setup(tmp_path_factory):
    from test_il import COLORS, ITEMS, make_tokenizer, make_trajectory
    from webshop_trl.trajectories import write_trajectories

    root = tmp_path_factory.mktemp("il-resume")
    encoder = root / "encoder"
    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)  # dropout on: the RNG streams must resume too
    BertModel(config).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    demos = root / "demos.jsonl"
    write_trajectories(demos, [make_trajectory(1500 + i, COLORS[i % 4], ITEMS[i % 3]) for i in range(10)])
    return root, encoder, demos


def il_recipe(path: Path, encoder: Path, demos: Path) -> Path:
    recipe = {
        "encoder_name_or_path": str(encoder), "dataset_paths": [str(demos)], "eval_fraction": 0.2,
        "max_observation_length": 96, "max_action_length": 16, "seed": 7, "max_steps": 10, "learning_rate": 3.0e-3,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "per_device_eval_batch_size": 8,
        "save_strategy": "steps", "save_steps": 2, "save_total_limit": 2, "eval_strategy": "no", "logging_steps": 1,
        "report_to": "none", "use_cpu": True, "disable_tqdm": True, "dataloader_num_workers": 0,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_il_killed_run_resumes_to_the_uninterrupted_weights(il_setup, tmp_path):
    _, encoder, demos = il_setup
    recipe = il_recipe(tmp_path / "il.yaml", encoder, demos)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    a = start("webshop_trl.scripts.il", recipe, "--output_dir", straight, cwd=tmp_path)
    b = start("webshop_trl.scripts.il", recipe, "--output_dir", killed, cwd=tmp_path, TEST_STEP_SLEEP=0.4)
    kill_after_checkpoint(b, killed)
    resumed_from = last_checkpoint(killed)
    step = global_step(resumed_from)
    assert 2 <= step < 10 and not (killed / "model.safetensors").exists()  # killed mid-run
    finish(a)

    out = finish(start("webshop_trl.scripts.il", recipe, "--output_dir", killed, "--resume_from_checkpoint", "true", cwd=tmp_path))
    assert f"resuming from {resumed_from}" in out
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["global_step"] == 10
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged == list(range(1, 11))  # the steps before the checkpoint come from it, the rest were run
    assert_same_weights(straight, killed)
    ea, eb = (json.loads((d / "eval_results.json").read_text()) for d in (straight, killed))
    assert ea["eval_loss"] == eb["eval_loss"] and ea["eval_choice_accuracy"] == eb["eval_choice_accuracy"]


# --------------------------------------------------------------------------- DPO
def dpo_recipe(path: Path, policy: Path, pairs: Path) -> Path:
    recipe = {
        "model_name_or_path": str(policy), "use_value_head": False, "dataset_name": str(pairs),
        "dataset_train_split": "train", "dataset_test_split": "eval", "loss_type": ["sigmoid"], "beta": 0.1,
        "max_length": None, "seed": 5, "max_steps": 6, "learning_rate": 3.0e-3, "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8, "bf16": False, "use_cpu": True, "eval_strategy": "no",
        "save_strategy": "steps", "save_steps": 2, "logging_steps": 1, "report_to": "none", "disable_tqdm": True,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_dpo_killed_while_saving_resumes_from_the_previous_checkpoint(tmp_path):
    from test_dpo_trainer import make_rows
    from tiny_policy import tiny_policy

    policy = tmp_path / "il-policy"
    tiny_policy(seed=2, dropout=0.1).save_pretrained(policy)
    rows = make_rows(24)
    pairs = tmp_path / "pairs"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:16]), "eval": datasets.Dataset.from_list(rows[16:])}).save_to_disk(str(pairs))
    recipe = dpo_recipe(tmp_path / "dpo.yaml", policy, pairs)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    a = start("webshop_trl.scripts.dpo", recipe, "--output_dir", straight, cwd=tmp_path)
    b = start("webshop_trl.scripts.dpo", recipe, "--output_dir", killed, cwd=tmp_path, TEST_KILL_WHILE_SAVING=4)
    b.communicate(timeout=120)
    assert b.returncode == -signal.SIGKILL
    # the kill came while saving checkpoint-4: weights and optimizer there, trainer_state.json not
    assert (killed / "checkpoint-4" / "model.safetensors").is_file() and (killed / "checkpoint-4" / "optimizer.pt").is_file()
    assert not (killed / "checkpoint-4" / "trainer_state.json").exists()
    assert last_checkpoint(killed) == killed / "checkpoint-2"
    finish(a)

    out = finish(start("webshop_trl.scripts.dpo", recipe, "--output_dir", killed, "--resume_from_checkpoint", "true", cwd=tmp_path))
    assert f"resuming from {killed / 'checkpoint-2'}" in out
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, 7))
    assert global_step(killed / "checkpoint-4") == 4  # rewritten whole by the resumed run
    assert_same_weights(straight, killed)
    assert_same_weights(straight / "checkpoint-4", killed / "checkpoint-4")
    ea, eb = (json.loads((d / "eval_results.json").read_text()) for d in (straight, killed))
    assert ea["eval_loss"] == eb["eval_loss"]


# --------------------------------------------------------------------------- PPO
def test_ppo_killed_run_resumes_and_logs_each_update_once(tmp_path, webshop_dir):
    from tiny_policy import tiny_policy

    policy = tmp_path / "init"
    tiny_policy(use_value_head=True).save_pretrained(policy)
    recipe = tmp_path / "ppo.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_name_or_path": str(policy), "data_dir": str(webshop_dir), "observation_mode": "text_rich", "step_limit": 6,
        "search_engine": "bm25s", "num_envs": 2, "num_steps": 4, "num_updates": 5, "num_epochs": 1, "num_minibatches": 2,
        "learning_rate": 1.0e-3, "il_coef": 0.0, "save_steps": 1, "save_total_limit": 2, "seed": 3, "use_cpu": True,
        "max_observation_length": 96, "max_action_length": 16,
    }))
    out_dir = tmp_path / "ppo"
    proc = start("webshop_trl.scripts.ppo", recipe, "--output_dir", out_dir, cwd=tmp_path)
    # PPO's checkpoints are complete when renamed into place: kill once one exists
    deadline = time.monotonic() + 120
    while not any(out_dir.glob("checkpoint-*")):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no PPO checkpoint in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    from webshop_trl.trainers.ppo_trainer import sorted_checkpoints

    resumed_from = sorted_checkpoints(out_dir)[-1]
    update = json.loads((resumed_from / "trainer_state.json").read_text())["update"]
    assert 1 <= update < 5 and not (out_dir / "model.safetensors").exists()

    # the rerun also pushes the final policy and its card to a local Hub (tests/hub_server.py)
    with FakeHub(token="hf_local_test_token") as hub:
        resumed = start("webshop_trl.scripts.ppo", recipe, "--output_dir", out_dir, "--resume_from_checkpoint", "true",
                        "--push_to_hub", "true", "--hub_model_id", "tester/webshop-ppo", cwd=tmp_path,
                        **hub.env(tmp_path / "hf-home"))
        out = finish(resumed, 180)
        assert not hub.unhandled and not hub.errors, (hub.unhandled, hub.errors)
        files = hub.files("tester/webshop-ppo", repo_type="model")
    assert f"resumed from {resumed_from} at update {update}" in out
    lines = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in lines] == [1, 2, 3, 4, 5]  # updates after the checkpoint were redone, logged once
    assert lines[-1]["env_steps"] == 5 * 8
    assert [p.name for p in sorted_checkpoints(out_dir)] == ["checkpoint-4", "checkpoint-5"]
    assert not list(out_dir.glob("tmp-*"))
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "README.md").is_file()
    assert {"README.md", "model.safetensors", "config.json", "metrics.jsonl"} <= set(files)
    assert not any(name.startswith(("checkpoint-", "tmp-")) for name in files)
    card = files["README.md"].decode()
    assert card == (out_dir / "README.md").read_text()
    meta = yaml.safe_load(card.split("\n---\n", 1)[0][4:])
    assert {"webshop", "trl", "ppo"} <= set(meta["tags"]) and meta["base_model"] == "tiny-random"
    assert "WebShop train goals" in card and "env steps: 40" in card and "updates: 5" in card
    assert "### last update" in card and "| update | 5 |" in card and "| num_updates | 5 |" in card
