"""The `webshop-trl` sub-commands as a user runs them: play (a scripted person) and evaluate."""

from __future__ import annotations

import builtins
import json

import pytest

from webshop_trl.cli.main import main
from webshop_trl.trajectories import read_trajectories


def feed(monkeypatch, answers):
    answers = iter(answers)

    def fake_input(prompt=""):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)


def test_play_saves_a_trajectory(monkeypatch, tmp_path, webshop_dir):
    out = tmp_path / "play.jsonl"
    # search (action 0 asks for a query), open the 4th entry (first product), buy (entry 6 on the item page)
    feed(monkeypatch, ["0", "red shoes", "3", "6"])
    assert main(["play", "--goal-index", "5", "--output", str(out), "--data-dir", str(webshop_dir)]) == 0
    (traj,) = list(read_trajectories(out))
    assert [s.action for s in traj.steps][0] == "search[red shoes]"
    assert traj.steps[-1].action == "click[buy now]"
    assert traj.metadata["completed"] is True and traj.source == "human-play"
    assert traj.goal["index"] == 5 and 0.0 <= traj.final_reward <= 1.0
    assert traj.steps[0].observation.startswith("WebShop\nInstruction: \n")


def test_play_interrupted_episode_is_kept(monkeypatch, tmp_path, webshop_dir):
    out = tmp_path / "play.jsonl"
    feed(monkeypatch, ["0", "blue shirt", "not an action"])  # then end of input
    assert main(["play", "--goal-index", "7", "--output", str(out), "--data-dir", str(webshop_dir)]) == 0
    (traj,) = list(read_trajectories(out))
    assert traj.metadata["completed"] is False and len(traj.steps) == 2
    assert traj.steps[1].action == "not an action"


def test_evaluate_command(tmp_path, webshop_dir, capsys):
    out = tmp_path / "rule.json"
    assert main(["evaluate", "--agent", "rule", "--max-goals", "6", "--num-envs", "3", "--output", str(out), "--data-dir", str(webshop_dir)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["episodes"] == 6 and summary["agent"] == "rule"
    assert json.loads(out.read_text())["summary"]["score"] == pytest.approx(summary["score"])


def test_bad_goal_index_is_a_clear_error(monkeypatch, tmp_path, webshop_dir, capsys):
    feed(monkeypatch, [])
    code = main(["play", "--goal-index", "99999", "--output", str(tmp_path / "x.jsonl"), "--data-dir", str(webshop_dir)])
    assert code == 2
    assert "unknown goal index 99999" in capsys.readouterr().err


@pytest.mark.parametrize(
    "method, recipe, config_class",
    [
        ("il", "recipes/minilm/il/config_smoke.yaml", "ILConfig"),
        ("dpo", "recipes/minilm/dpo/config_smoke.yaml", "ActionDPOConfig"),
        ("ppo", "recipes/minilm/ppo/config_smoke.yaml", "PPOConfig"),
    ],
)
def test_train_dispatches_each_method_to_its_script(monkeypatch, tmp_path, method, recipe, config_class):
    import importlib
    from pathlib import Path

    from webshop_trl.cli import train

    assert method in train.METHODS
    module = importlib.import_module(f"webshop_trl.scripts.{method}")
    seen = []
    monkeypatch.setattr(module, "main", lambda *parsed: seen.append(parsed))
    recipe_path = Path(__file__).resolve().parents[1] / recipe
    out = tmp_path / "out"
    assert main(["train", method, "--config", str(recipe_path), "--output_dir", str(out), "--use_cpu", "true",
                 "--resume_from_checkpoint", "true"]) == 0
    (parsed,) = seen
    config = parsed[1]
    assert type(config).__name__ == config_class and config.output_dir == str(out)
    assert config.resume_from_checkpoint == "true"
