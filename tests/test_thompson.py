"""Thompson-sampling evaluation: posterior bookkeeping, determinism, workers, plots, JSON and CLI."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from webshop_trl.evaluation.plots import plot_eval_results, plot_thompson
from webshop_trl.evaluation.thompson import (
    AgentSpec,
    ThompsonConfig,
    ThompsonError,
    ThompsonReport,
    beta_interval,
    beta_ppf,
    execute_runs,
    run_thompson,
    thompson_loop,
    validate_agents,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def config(webshop_dir):
    # bm25s: no JVM to start in each worker; a short step limit bounds the tiny policy's wandering
    return ThompsonConfig(
        num_runs=2, rollouts_per_run=12, rollouts_per_round=4, num_workers=0, data_dir=str(webshop_dir),
        engine="bm25s", step_limit=12, seed=3, p_best_samples=4000,
    )


@pytest.fixture(scope="module")
def agents(tiny_checkpoint):
    return [
        AgentSpec.parse("rule"),
        AgentSpec.parse("random"),
        AgentSpec.parse(f"tiny=policy:{tiny_checkpoint}:t=1.0"),
    ]


@pytest.fixture(scope="module")
def report(agents, config):
    return run_thompson(agents, config, progress=False)


def _runs_without_time(report):
    return [{k: v for k, v in run.items() if k != "seconds"} for run in report.runs]


# --------------------------------------------------------------------------- input
def test_agent_spec_syntax(tiny_checkpoint):
    assert AgentSpec.parse("rule") == AgentSpec(name="rule", kind="rule")
    assert AgentSpec.parse("rnd=random:obs=text_rich") == AgentSpec(name="rnd", kind="random", observation_mode="text_rich")
    spec = AgentSpec.parse(f"il=policy:{tiny_checkpoint}")
    assert (spec.name, spec.kind, spec.checkpoint, spec.greedy) == ("il", "policy", str(tiny_checkpoint), True)
    spec = AgentSpec.parse(f"dpo=policy:{tiny_checkpoint}:t=0.5:query=human:cap=20")
    assert (spec.greedy, spec.temperature, spec.query_source, spec.max_candidates) == (False, 0.5, "human", 20)
    assert AgentSpec.parse(f"policy:{tiny_checkpoint}:sample").name == tiny_checkpoint.name
    assert AgentSpec.parse(f"x=policy:{tiny_checkpoint}:greedy").resolved_observation_mode(ThompsonConfig()) == "text_rich"


def test_bad_input_is_named(tmp_path, tiny_checkpoint):
    with pytest.raises(ThompsonError, match="unknown agent kind 'gpt'"):
        AgentSpec.parse("gpt")
    with pytest.raises(ThompsonError, match="unknown agent kind 'gpt'"):
        validate_agents([AgentSpec(name="g", kind="gpt")])
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ThompsonError, match=f"{missing}.*does not exist"):
        AgentSpec.parse(f"il=policy:{missing}")
    with pytest.raises(ThompsonError, match="needs a checkpoint"):
        AgentSpec.parse("il=policy")
    with pytest.raises(ThompsonError, match="unknown option 'bogus'"):
        AgentSpec.parse(f"il=policy:{tiny_checkpoint}:bogus")
    with pytest.raises(ThompsonError, match="duplicate agent name 'rule'"):
        validate_agents([AgentSpec.parse("rule"), AgentSpec.parse("rule=random")])
    with pytest.raises(ThompsonError, match="rollouts_per_run must be an integer >= 1, got 0"):
        run_thompson([AgentSpec.parse("rule")], ThompsonConfig(rollouts_per_run=0), progress=False)
    with pytest.raises(ThompsonError, match="rollouts_per_round must be an integer >= 1, got -2"):
        ThompsonConfig(rollouts_per_round=-2).validate()
    with pytest.raises(ThompsonError, match="objective must be one of success, score, got 'reward'"):
        ThompsonConfig(objective="reward").validate()
    with pytest.raises(ThompsonError, match="at least one agent"):
        run_thompson([], ThompsonConfig(), progress=False)


# --------------------------------------------------------------------------- sampling logic (no environment)
def test_beta_quantiles_match_closed_forms():
    q = np.array([0.025, 0.3, 0.5, 0.975])
    assert np.allclose(beta_ppf(q, 1.0, 1.0), q, atol=1e-12)  # uniform
    assert np.allclose(beta_ppf(q, 3.0, 1.0), q ** (1 / 3), atol=1e-12)  # cdf x^3
    assert np.allclose(beta_ppf(q, 1.0, 2.5), 1 - (1 - q) ** (1 / 2.5), atol=1e-12)  # cdf 1-(1-x)^b
    lo, hi = beta_interval(500.5, 300.2, 0.95)  # close to the normal approximation
    mean, sd = 500.5 / 800.7, (500.5 * 300.2 / (800.7**2 * 801.7)) ** 0.5
    assert lo == pytest.approx(mean - 1.96 * sd, abs=2e-3) and hi == pytest.approx(mean + 1.96 * sd, abs=2e-3)


def _bernoulli_bandit(probs, seed=0):
    rng = np.random.default_rng(seed)
    return lambda picks: [float(rng.random() < probs[arm]) for arm, _ in picks]


@pytest.mark.parametrize("per_round", [1, 8])
def test_sampling_logic_synthetic_bandit_best_arm_gets_most_pulls(per_round):
    """A pure unit test of the sampling loop: a fake Bernoulli bandit instead of the environment."""
    probs = [0.2, 0.45, 0.8]
    cfg = ThompsonConfig(rollouts_per_run=600, rollouts_per_round=per_round, seed=1)
    run = thompson_loop(3, list(range(50)), _bernoulli_bandit(probs), cfg)
    assert sum(run["pulls"]) == 600
    assert run["pulls"][2] > 0.7 * 600 and run["pulls"][2] == max(run["pulls"])
    assert len(run["history"]["rollouts"]) == -(-600 // per_round)
    report = ThompsonReport(cfg, [AgentSpec(name=f"arm{i}", kind="rule") for i in range(3)], [run])
    s = report.summary()
    assert s["best"] == "arm2" and s["agents"]["arm2"]["success"]["p_best"] > 0.95
    # the batched loop's last round is shorter when k does not divide the rollouts
    odd = thompson_loop(3, [7], _bernoulli_bandit(probs), dataclasses.replace(cfg, rollouts_per_run=21, rollouts_per_round=8))
    assert odd["history"]["rollouts"] == [8, 16, 21] and set(odd["episodes"]["goal"]) == {7}


def test_score_objective_uses_fractional_updates():
    cfg = ThompsonConfig(rollouts_per_run=40, rollouts_per_round=5, objective="score", prior_alpha=2.0, prior_beta=3.0)
    run = thompson_loop(2, [0, 1], lambda picks: [0.25 if arm == 0 else 0.75 for arm, _ in picks], cfg)
    pulls = np.array(run["pulls"])
    assert np.allclose(run["history"]["score_alpha"][-1], 2.0 + pulls * np.array([0.25, 0.75]))
    assert np.allclose(run["history"]["score_beta"][-1], 3.0 + pulls * np.array([0.75, 0.25]))
    assert run["successes"] == [0, 0] and run["pulls"][1] > run["pulls"][0]


# --------------------------------------------------------------------------- real environment
def test_posterior_bookkeeping(report, config):
    a0, b0 = config.prior_alpha, config.prior_beta
    assert len(report.runs) == config.num_runs
    for run in report.runs:
        arms = np.array(run["episodes"]["arm"])
        rewards = np.array(run["episodes"]["reward"])
        h = run["history"]
        assert sum(run["pulls"]) == config.rollouts_per_run == len(arms)
        assert h["rollouts"] == [4, 8, 12] and h["pulls"][-1] == run["pulls"]
        for j in range(3):
            mine = rewards[arms == j]
            assert run["pulls"][j] == len(mine)
            assert h["success_alpha"][-1][j] == a0 + np.sum(mine == 1.0)
            assert h["success_beta"][-1][j] == b0 + np.sum(mine != 1.0)
            assert h["success_alpha"][-1][j] + h["success_beta"][-1][j] == a0 + b0 + run["pulls"][j]
            assert h["score_alpha"][-1][j] == pytest.approx(a0 + mine.sum())
            assert h["score_beta"][-1][j] == pytest.approx(b0 + len(mine) - mine.sum())
        assert all(0 <= r <= 1 for r in rewards)
        assert all(0 <= g < 500 for g in run["episodes"]["goal"])  # the test split
    s = report.summary()
    total = sum(e["pulls"] for e in s["agents"].values())
    assert total == config.num_runs * config.rollouts_per_run
    for metric in ("success", "score"):
        assert sum(e[metric]["p_best"] for e in s["agents"].values()) == pytest.approx(1.0)
        for i in range(config.num_runs):
            assert sum(e[metric]["p_best_per_run"][i] for e in s["agents"].values()) == pytest.approx(1.0)
        for e in s["agents"].values():
            lo, hi = e[metric]["ci"]
            assert lo < e[metric]["mean"] < hi
            assert e[metric]["runs"]["min"] <= e[metric]["runs"]["mean"] <= e[metric]["runs"]["max"]


def test_rule_rewards_are_the_environment_rewards(report, config):
    from webshop_trl.agents import RuleAgent
    from webshop_trl.evaluation import evaluate_agent

    run = report.runs[0]
    goals = [g for g, a in zip(run["episodes"]["goal"], run["episodes"]["arm"]) if a == 0]
    rewards = [r for r, a in zip(run["episodes"]["reward"], run["episodes"]["arm"]) if a == 0]
    if not goals:
        pytest.skip("the rule agent was not picked in run 0")
    direct = evaluate_agent(RuleAgent(), config.env_config("text"), goal_indices=goals, num_envs=2, progress=False)
    assert sorted(rewards) == sorted(e.reward for e in direct.episodes)


def test_same_seed_same_result_and_parallel_equals_serial(report, agents, config):
    again = run_thompson(agents, config, progress=False)
    assert _runs_without_time(again) == _runs_without_time(report)
    assert again.summary() == report.summary()
    parallel = run_thompson(agents, dataclasses.replace(config, num_workers=2), progress=False)
    assert _runs_without_time(parallel) == _runs_without_time(report)
    other = run_thompson(agents[:2], dataclasses.replace(config, seed=4, num_runs=1), progress=False)
    assert other.runs[0]["episodes"]["goal"] != report.runs[0]["episodes"]["goal"]


def test_worker_failures_name_the_run():
    with pytest.raises(ThompsonError, match=r"worker process died.*run\(s\) 0, 1"):
        execute_runs([3, 3], os._exit, num_workers=2)  # each worker process exits at once
    with pytest.raises(ThompsonError, match="run 1 failed in its worker process: ValueError"):
        execute_runs(["1", "not a number"], int, num_workers=2)
    with pytest.raises(ThompsonError, match="run 1 failed: ValueError"):
        execute_runs(["1", "not a number"], int, num_workers=0)


# --------------------------------------------------------------------------- outputs
def test_json_round_trip_and_table(report, tmp_path):
    path = report.save(tmp_path / "r" / "report.json")
    loaded = ThompsonReport.load(path)
    assert loaded.to_dict() == json.loads(path.read_text()) == json.loads(json.dumps(report.to_dict()))
    assert loaded.agents == report.agents and loaded.config == report.config
    table = loaded.table_markdown()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 3 and all(f"| {name} |" in table for name in ("rule", "random", "tiny"))
    assert "observed successes / pulls" in lines[0] and "success %: posterior mean [95% CrI]" in lines[0]
    for j, name in enumerate(report.names):  # the observed counts are the episodes' own
        rewards = [r for run in report.runs for r, a in zip(run["episodes"]["reward"], run["episodes"]["arm"]) if a == j]
        entry = loaded.summary()["agents"][name]
        assert entry["successes"] == sum(r == 1.0 for r in rewards) and entry["pulls"] == len(rewards)
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        assert (f"| {entry['successes']} / {entry['pulls']} (" in row) if rewards else ("| no pulls |" in row)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ThompsonError, match="not a Thompson report"):
        ThompsonReport.load(tmp_path / "bad.json")


def test_plots_are_pngs(report, tmp_path):
    from PIL import Image

    paths = plot_thompson(report, tmp_path / "plots")
    assert {p.name for p in paths} >= {"score_success_by_agent.png", "posterior_success.png", "posterior_score.png", "pulls.png"}
    summaries = {"rule": {"score": 57.1, "success_rate": 2.2, "episodes": 500, "split": "test"},
                 "random": {"score": 30.0, "success_rate": 1.0, "episodes": 500, "split": "test"}}
    paths.append(plot_eval_results(summaries, tmp_path / "eval" / "bars.png"))
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            image.verify()
    with pytest.raises(ValueError, match="has no success_rate"):
        plot_eval_results({"x": {"score": 1.0}}, tmp_path / "x.png")


def test_cli_end_to_end(webshop_dir, tmp_path, capsys):
    from webshop_trl.cli.main import main

    out = tmp_path / "th"
    common = ["thompson", "--data-dir", str(webshop_dir), "--engine", "bm25s", "--no-progress", "--workers", "0"]
    assert main([*common, "--agent", "rule", "--agent", "rnd=random", "--runs", "2", "--rollouts", "6",
                 "--per-round", "3", "--step-limit", "10", "--output", str(out), "--progress-lines"]) == 0
    progress = [x for x in capsys.readouterr().err.splitlines() if x.startswith("thompson 2 agents x 2 runs, rollouts: ")]
    assert progress[0].startswith("thompson 2 agents x 2 runs, rollouts: 3/12,") and progress[-1].startswith(
        "thompson 2 agents x 2 runs, rollouts: 12/12,")
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "table.md", "pulls.png", "score_success_by_agent.png"} <= names
    report = ThompsonReport.load(out / "report.json")
    assert [a.name for a in report.agents] == ["rule", "rnd"] and report.config.rollouts_per_round == 3
    assert sum(e["pulls"] for e in report.summary()["agents"].values()) == 12
    assert "| rnd |" in (out / "table.md").read_text()
    (out / "pulls.png").unlink()
    assert main(["thompson", "--plot-only", "--output", str(out), "--no-progress"]) == 0
    assert (out / "pulls.png").read_bytes()[:8] == PNG_MAGIC
    capsys.readouterr()
    assert main([*common, "--agent", "gpt"]) == 2
    assert "unknown agent kind 'gpt'" in capsys.readouterr().err
    assert main([*common, "--agent", "rule", "--rollouts", "0"]) == 2
    assert "rollouts_per_run must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main([*common, "--agent", "rule", "--agent", "rule"]) == 2
    assert "duplicate agent name 'rule'" in capsys.readouterr().err


# --------------------------------------------------------------------------- who is best, what is settled
def _report_from_counts(pulls, successes, reward_sums=None, **config):
    """A report from per-agent counts (one run), no environment: what `summary` reads."""
    run = {"run_index": 0, "pulls": list(pulls), "successes": list(successes),
           "reward_sums": list(successes if reward_sums is None else reward_sums)}
    cfg = ThompsonConfig(p_best_samples=20000, **config)
    return ThompsonReport(cfg, [AgentSpec(name=f"arm{i}", kind="rule") for i in range(len(pulls))], [run])


def test_an_agent_without_pulls_is_never_named_best():
    """arm2 was never pulled: its posterior is the uniform prior, whose P(best) beats arm0 and
    arm1 (10 % and 20 % observed); the most likely best is still an agent with pulls."""
    report = _report_from_counts([50, 50, 0], [5, 10, 0])
    s = report.summary()
    p = {n: e["success"]["p_best"] for n, e in s["agents"].items()}
    assert p["arm2"] > 0.7 and max(p, key=p.get) == "arm2"  # the raw argmax would name the prior
    assert s["best"] == "arm1" and s["no_pulls"] == ["arm2"]
    assert s["agents"]["arm2"]["success"]["observed"] is None and s["agents"]["arm1"]["successes"] == 10
    table = report.table_markdown()
    row2 = next(line for line in table.splitlines() if line.startswith("| arm2 |"))
    assert "| no pulls |" in row2 and "(prior only)" in row2 and "(no pulls) |" in row2
    assert "| 10 / 50 (20.0%) |" in table
    assert "Most likely best (largest P(best success) among agents with pulls): arm1" in table
    assert "Never pulled, so not ranked: arm2." in table


def test_one_pulled_agent_is_best_even_with_the_lowest_p_best(tmp_path):
    """One rollout, reward 0: the pulled arm's posterior sits below the two priors."""
    cfg = ThompsonConfig(rollouts_per_run=1, p_best_samples=5000)
    run = thompson_loop(3, [0], lambda picks: [0.0 for _ in picks], cfg)
    report = ThompsonReport(cfg, [AgentSpec(name=f"arm{i}", kind="rule") for i in range(3)], [run])
    s = report.summary()
    [pulled] = [n for n, e in s["agents"].items() if e["pulls"]]
    assert s["best"] == pulled and len(s["no_pulls"]) == 2
    assert s["agents"][pulled]["success"]["p_best"] < min(s["agents"][n]["success"]["p_best"] for n in s["no_pulls"])
    assert s["settled"] == [] and s["settled_statement"].startswith("fewer than two agents have pulls")
    assert sum("(no pulls)" in line for line in report.table_markdown().splitlines()) == 2
    assert all(path.read_bytes()[:8] == PNG_MAGIC for path in plot_thompson(report, tmp_path))


def test_settled_differences_are_stated():
    clear = _report_from_counts([200, 200, 200], [20, 100, 104])
    s = clear.summary()
    pairs = {(p["a"], p["b"]): p["p_a_greater"] for p in s["pairwise"]["success"]}
    assert set(pairs) == {("arm0", "arm1"), ("arm0", "arm2"), ("arm1", "arm2")}
    assert pairs[("arm0", "arm1")] < 0.01 and 0.05 < pairs[("arm1", "arm2")] < 0.95
    assert [(p["a"], p["b"]) for p in s["settled"]] == [("arm0", "arm1"), ("arm0", "arm2")]
    assert s["settled_statement"].startswith("settled at 95 % on success: arm1 > arm0 (P = 1.000); arm2 > arm0")
    assert "Settled at 95 % on success: arm1 > arm0" in clear.table_markdown()
    same = _report_from_counts([100, 100], [30, 30])
    assert same.summary()["settled"] == []
    assert same.summary()["pairwise"]["success"][0]["p_a_greater"] == pytest.approx(0.5, abs=0.02)
    assert "No difference between agents is settled at 95 %" in same.table_markdown()
    # by the score objective, settledness follows the score posteriors
    by_score = _report_from_counts([100, 100], [0, 0], reward_sums=[30.0, 70.0], objective="score")
    assert [(p["a"], p["b"]) for p in by_score.summary()["settled"]] == [("arm0", "arm1")]
