"""Self-generated trajectories (paper §3.2): loop pruning, and rollouts of a tiny random policy.

Loop pruning is checked on hand-built state sequences and on episodes played in the real env
(pruned trajectories replay to the same reward); generation runs the tiny policy of
tests/tiny_policy.py on a few train goals with threshold 0.0 so that episodes are kept.
"""

from __future__ import annotations

import json

import pytest

from webshop_trl.agents.policy_agent import PolicyCheckpointError
from webshop_trl.cli.main import main
from webshop_trl.envs import WebShopConfig, WebShopEnv
from webshop_trl.errors import UnknownGoalError
from webshop_trl.trajectories import Step, Trajectory, read_trajectories
from webshop_trl.trajectories.loops import cut_loops, find_loops, prune_loops, replay_actions, state_key
from webshop_trl.trajectories.self_generated import (
    ResumeMismatchError,
    SelfGenConfig,
    attempts_path,
    format_self_summary,
    generate_self_trajectories,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def env_config(webshop_dir):
    return WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich", step_limit=25)


# --------------------------------------------------------------------------- the loop rule
def steps_of(states: str) -> list[Step]:
    """One step per letter: observation = the letter, action = a<position>."""
    return [Step(s, [f"click[{s}]"], f"a{n}") for n, s in enumerate(states)]


@pytest.mark.parametrize(
    "states, loops, kept",
    [
        ("ABAC", [(0, 2)], [2, 3]),  # A->B->A->C: A straight to C
        ("ABABC", [(0, 2)], [2, 3, 4]),  # first A to what followed the last A, then B once
        ("ABCBAD", [(0, 4)], [4, 5]),  # nested loops collapse into the outer one
        ("ABCBD", [(1, 3)], [0, 3, 4]),
        ("AAB", [(0, 1)], [1, 2]),  # a self-loop (a no-op click)
        ("ABACADA", [(0, 6)], [6]),
        ("ABCD", [], [0, 1, 2, 3]),
        ("", [], []),
    ],
)
def test_find_and_cut_loops(states, loops, kept):
    assert find_loops(list(states)) == loops
    steps = steps_of(states)
    pruned = cut_loops(steps, loops)
    assert [s.action for s in pruned] == [f"a{n}" for n in kept]
    first = {}
    for n, s in enumerate(states):
        first.setdefault(s, n)
    # the step after a cut sits where the state was first seen
    assert [s.observation for s in pruned] == [states[n] for n in kept]
    assert len({s.observation for s in pruned}) == len(pruned)  # no state twice


def test_prune_without_env_and_bad_cuts():
    traj = Trajectory(goal={"index": 1}, steps=steps_of("ABCBAD"), final_reward=1.0, source="x", metadata={"k": 1})
    result = prune_loops(traj)
    assert [s.action for s in result.trajectory.steps] == ["a4", "a5"]
    assert (result.loops_removed, result.steps_removed, result.replays) == (1, 4, 0)
    assert len(traj.steps) == 6 and result.trajectory.metadata == {"k": 1}  # input untouched
    with pytest.raises(ValueError, match="outside"):
        cut_loops(steps_of("AB"), [(0, 5)])
    with pytest.raises(ValueError, match="unknown loop key"):
        state_key("x", "pixels")


def test_state_key_ignores_visited_marks_only():
    seen = "Page 1\n[button] Next > [button_]\n\n[clicked button] B01 [clicked button_]\nRed shoes\n"
    fresh = "Page 1\n[button] Next > [button_]\n\n[button] B01 [button_]\nRed shoes\n"
    assert state_key(seen) == state_key(fresh) and state_key(seen, "observation") != fresh
    option_on = "You have clicked small.\nsize\n  [clicked button] small [clicked button_]\n"
    option_off = "size\n  [button] small [button_]\n"
    assert state_key(option_on) != state_key(option_off)  # a selected option is part of the state


# --------------------------------------------------------------------------- pruning in the env
def play(env, goal, actions, source="test"):
    obs, info = env.reset(options={"goal_index": goal})
    traj = Trajectory(goal=env.goal.to_dict(), source=source)
    for a in actions:
        nxt, r, term, trunc, nxt_info = env.step(a)
        assert nxt_info["valid_action"], (a, nxt_info.get("invalid_reason"))
        traj.steps.append(Step(obs, list(info["available_actions"]), a, float(r)))
        obs, info = nxt, nxt_info
        if term:
            traj.final_reward = float(r)
    return traj


def test_pruned_trajectories_replay_to_the_same_reward(env_config):
    env = WebShopEnv(env_config)
    _, info = env.reset(options={"goal_index": 1500})
    search = f"search[{info['instruction'].lower()}]"
    # S -> R -> I1 -> D1 -> I1 -> R' (I1 marked visited) -> I2 -> buy
    actions = [search, "click[b07hrfsnl4]", "click[description]", "click[< prev]", "click[< prev]", "click[b09qqp3356]", "click[buy now]"]
    traj = play(env, 1500, actions)
    assert traj.steps[5].observation != traj.steps[1].observation  # the results page now marks I1
    result = prune_loops(traj, env=env)
    pruned = result.trajectory
    assert [s.action for s in pruned.steps] == [search, "click[b09qqp3356]", "click[buy now]"]
    assert result.loops_removed == 1 and result.steps_removed == 4 and result.refused == 0
    replay = replay_actions(env, 1500, [s.action for s in pruned.steps])
    assert replay.valid and replay.terminated and replay.reward == pytest.approx(traj.final_reward, abs=1e-12)
    # the stored steps are what the env shows on the shorter path (no visited mark left behind)
    assert [(s.observation, s.available_actions, s.reward) for s in pruned.steps] == [
        (s.observation, s.available_actions, s.reward) for s in replay.steps
    ]
    assert pruned.final_reward == traj.final_reward
    # the raw-observation key misses the R/R' loop but still removes the sub-page detour
    exact = prune_loops(traj, env=env, key="observation")
    assert [s.action for s in exact.trajectory.steps] == [search, "click[b07hrfsnl4]", "click[< prev]", "click[b09qqp3356]", "click[buy now]"]


def test_cuts_that_change_the_reward_are_refused(webshop_dir):
    """In text mode a selected option is invisible: item page before and after an option click
    look the same, so the bare rule would cut the click; the replay check refuses it."""
    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), observation_mode="text"))
    _, info = env.reset(options={"goal_index": 1500})
    actions = [f"search[{info['instruction'].lower()}]", "click[b07hrfsnl4]", "click[coral sands]", "click[3x-large tall]",
               "click[description]", "click[< prev]", "click[buy now]"]
    traj = play(env, 1500, actions)
    assert traj.final_reward == 1.0
    blind = prune_loops(traj)  # no env: the option clicks go too
    assert [s.action for s in blind.trajectory.steps][-1] == "click[buy now]" and blind.steps_removed == 4
    assert replay_actions(env, 1500, [s.action for s in blind.trajectory.steps]).reward < 1.0
    checked = prune_loops(traj, env=env)
    assert [s.action for s in checked.trajectory.steps] == actions[:4] + ["click[buy now]"]  # only the sub-page detour goes
    assert checked.refused >= 1 and checked.loops_removed == 1
    assert replay_actions(env, 1500, [s.action for s in checked.trajectory.steps]).reward == 1.0


# --------------------------------------------------------------------------- generation
def small(checkpoint, **kw):
    base = dict(checkpoint=str(checkpoint), threshold=0.0, num_keep=3, max_episodes=12, num_envs=3, seed=0)
    base.update(kw)
    return SelfGenConfig(**base)


def lines(path):
    return path.read_text().splitlines()


def test_generation_end_to_end(checkpoint, env_config, tmp_path):
    out = tmp_path / "self.jsonl"
    seen = []
    summary = generate_self_trajectories(out, small(checkpoint), env_config, on_episode=seen.append)
    trajs = list(read_trajectories(out))
    assert len(trajs) == summary["kept"] == 3 and summary["stopped"] == "num_keep reached"
    assert summary["tried"] == len(seen) >= 3 and summary["acceptance_rate"] == pytest.approx(300 / summary["tried"])
    log = [json.loads(x) for x in lines(attempts_path(out))]
    assert log[0]["kind"] == "header" and len(log) == 1 + summary["tried"]
    assert [r["episode"] for r in log[1:]] == list(range(1, summary["tried"] + 1))
    env = WebShopEnv(env_config)
    for t in trajs:
        m = t.metadata
        assert t.source == "self-generated" and t.goal["index"] == m["goal_index"] >= 1500
        assert m["checkpoint"] == str(checkpoint) and m["temperature"] == 1.0 and m["seed"] == 0
        assert m["episodes_tried"] == m["episode"] and m["num_steps"] == len(t.steps)
        assert m["steps_before_pruning"] == len(m["actions_played"]) == m["num_steps"] + m["steps_removed"]
        assert t.steps[-1].action == "click[buy now]" and m["completed"]  # threshold 0 still needs a purchase
        # valid: the stored actions replay to the stored reward and observations
        replay = replay_actions(env, t.goal["index"], [s.action for s in t.steps])
        assert replay.valid and replay.reward == pytest.approx(t.final_reward, abs=1e-12)
        assert [s.observation for s in replay.steps] == [s.observation for s in t.steps]
        keys = [state_key(s.observation) for s in t.steps]
        assert len(set(keys)) == len(keys)  # no loop left
    before = [r["steps"] for r in log[1:] if r["kept"]]
    assert summary["mean_steps_before_pruning"] == pytest.approx(sum(before) / 3)
    text = format_self_summary(summary)
    assert "acceptance" in text and "before pruning" in text


def test_resume_gives_what_one_run_gives(checkpoint, env_config, tmp_path):
    one = tmp_path / "one.jsonl"
    generate_self_trajectories(one, small(checkpoint, num_keep=4, num_envs=1), env_config)
    two = tmp_path / "two.jsonl"
    first = generate_self_trajectories(two, small(checkpoint, num_keep=2), env_config)
    assert first["kept"] == 2
    with open(two, "a") as fh:  # a writer killed mid-line
        fh.write('{"format": "webshop-trl/trajectory/v1", "goal": {"ind')
    second = generate_self_trajectories(two, small(checkpoint, num_keep=4), env_config)
    assert second["kept"] == 4 and second["kept_now"] == 2 and second["tried"] == first["tried"] + second["tried_now"]
    strip = lambda t: ([(s.observation, s.action) for s in t.steps], t.final_reward, t.metadata["goal_index"], t.metadata["episode"])
    assert [strip(t) for t in read_trajectories(two)] == [strip(t) for t in read_trajectories(one)]
    assert lines(attempts_path(two)) == lines(attempts_path(one))
    # nothing left to do: a third run returns at once
    third = generate_self_trajectories(two, small(checkpoint, num_keep=4), env_config)
    assert third["tried_now"] == 0 and third["kept"] == 4
    with pytest.raises(ResumeMismatchError, match="temperature"):
        generate_self_trajectories(two, small(checkpoint, num_keep=5, temperature=0.5), env_config)
    assert generate_self_trajectories(two, small(checkpoint, num_keep=1, temperature=0.5), env_config, overwrite=True)["kept"] == 1


def test_bad_input_is_a_clear_error(checkpoint, env_config, tmp_path):
    out = tmp_path / "x.jsonl"
    with pytest.raises(PolicyCheckpointError, match="policy checkpoint not found"):
        generate_self_trajectories(out, small(tmp_path / "missing"), env_config)
    assert not out.exists() and not attempts_path(out).exists()
    with pytest.raises(UnknownGoalError, match="99999"):
        generate_self_trajectories(out, small(checkpoint, goal_indices=[1500, 99999]), env_config)
    with pytest.raises(ValueError, match="temperature"):
        generate_self_trajectories(out, small(checkpoint, temperature=0.0), env_config)
    out.write_text(json.dumps({"goal": {}, "steps": [], "source": "expert", "metadata": {}}) + "\n")
    with pytest.raises(ResumeMismatchError, match="not a self-generated record"):
        generate_self_trajectories(out, small(checkpoint), env_config)


def test_demos_self_cli_and_script(checkpoint, webshop_dir, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    args = ["--checkpoint", str(checkpoint), "--threshold", "0", "--max-episodes", "6", "--num-envs", "2", "--goal-indices",
            "1500", "1501", "1502", "1503", "1504", "1505", "--step-limit", "25", "--output", str(out), "--quiet",
            "--data-dir", str(webshop_dir)]
    assert main(["demos", "self", *args, "--num-keep", "1", "--progress-lines"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "acceptance" in printed and json.loads(printed.strip().splitlines()[-1])["kept"] == 1
    # plain progress lines for the pipeline's logs: the first episode's, and the one that reached num_keep
    progress = [x for x in captured.err.splitlines() if x.startswith("self-generated, kept: ")]
    assert progress and progress[-1].startswith("self-generated, kept: 1/1, tried ") and "elapsed" in progress[-1]
    assert len(lines(out)) == 1
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("self_generated_script", Path(__file__).parents[1] / "datasets_build" / "self_generated.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([*args, "--num-keep", "2"]) == 0  # resumes the same file
    assert len(lines(out)) == 2
    assert script.main(["--checkpoint", str(tmp_path / "nope"), "--output", str(tmp_path / "y.jsonl"), "--quiet"]) == 2
    assert "policy checkpoint not found" in capsys.readouterr().err
