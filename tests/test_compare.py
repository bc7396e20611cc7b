"""`webshop-trl compare`: the statistics on known cases, agent specs with pooled seeds, the CLI end
to end on the real environment (rule, random and a tiny policy on a few goals), the cache, and
bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from webshop_trl.evaluation import stats
from webshop_trl.evaluation.compare import AgentGroup, CompareConfig, CompareError, compare_agents, validate_groups
from webshop_trl.evaluation.thompson import ThompsonError

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- bad input (written first)
@pytest.fixture(scope="module")
def cli_common(webshop_dir):
    return ["compare", "--data-dir", str(webshop_dir), "--engine", "bm25s", "--no-progress", "--step-limit", "10",
            "--max-goals", "5", "--resamples", "2000"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("webshop-trl compare: error: ")
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--agent", "gpt"], "unknown agent kind 'gpt'"),
        (["--agent", "il=policy:/no/such/checkpoint"], "'/no/such/checkpoint' does not exist"),
        (["--agent", "rule", "--split-mode", "foo"], "split mode must be one of product, index, got 'foo'"),
        (["--agent", "rule", "--split", "dev"], "split must be one of test, eval, train, got 'dev'"),
        (["--agent", "rule", "--engine", "google"], "engine must be one of lucene, bm25s, got 'google'"),
        (["--agent", "rule", "--agent", "rule=random"], "duplicate agent name 'rule'"),
        (["--agent", "rule", "--max-goals", "0"], "max_goals must be an integer >= 1, got 0"),
        (["--agent", "rule", "--level", "1.5"], "level must be in (0, 1), got 1.5"),
        (["--agent", "policy:a,b"], "needs a name (NAME=policy:CKPT1,CKPT2)"),
        (["--agent", "r=random:a,b"], "only policies take several checkpoints"),
        ([], "give at least one --agent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli_common, capsys, extra, message, tmp_path):
    from webshop_trl.cli.main import main

    assert main([*cli_common, "--output", str(tmp_path / "c"), *extra]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "c").exists()  # nothing evaluated or written


def test_agent_groups(tiny_checkpoint, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    group = AgentGroup.parse(f"il=policy:{tiny_checkpoint},{other}:t=0.5:query=human")
    assert group.name == "il" and len(group.seeds) == 2
    assert [s.checkpoint for s in group.seeds] == [str(tiny_checkpoint), str(other)]
    assert all((s.name, s.greedy, s.temperature, s.query_source) == ("il", False, 0.5, "human") for s in group.seeds)
    single = AgentGroup.parse(f"policy:{tiny_checkpoint}")
    assert single.name == tiny_checkpoint.name and len(single.seeds) == 1 and single.seeds[0].greedy  # greedy by default
    assert AgentGroup.parse("rnd=random").seeds[0].kind == "random"
    with pytest.raises(CompareError, match="names a checkpoint twice"):
        AgentGroup.parse(f"il=policy:{tiny_checkpoint},{tiny_checkpoint}")
    with pytest.raises(CompareError, match="empty checkpoint"):
        AgentGroup.parse(f"il=policy:{tiny_checkpoint},")
    with pytest.raises(ThompsonError, match="does not exist"):  # the second seed's folder is missing
        AgentGroup.parse(f"il=policy:{tiny_checkpoint},{tmp_path}/missing")
    with pytest.raises(CompareError, match="has no config.json"):  # a folder, but not a checkpoint
        validate_groups([group])


# --------------------------------------------------------------------------- statistics on known cases
def test_identical_agents_differ_by_zero():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, 300)
    d = stats.paired_difference(a, a.copy(), resamples=2000, seed=1)
    assert d.value == 0 and d.ci == (0.0, 0.0) and d.ci[0] <= 0 <= d.ci[1]
    assert (d.p_better, d.p_tie, d.p_worse) == (0.0, 1.0, 0.0)  # ties count as not better
    assert not d.settled and d.verdict("a", "b") == "not settled"


def test_better_on_every_goal_is_settled():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 90, 200)
    b = a + rng.uniform(0.5, 10, 200)
    d = stats.paired_difference(a, b, resamples=2000, seed=2)
    assert d.p_better == 1.0 and d.p_tie == 0.0 and d.settled and d.ci[0] > 0
    assert d.value == pytest.approx(np.mean(b - a))
    assert d.verdict("a", "b") == "b better (settled)"
    assert stats.paired_difference(b, a, resamples=2000, seed=2).verdict("b", "a") == "b better (settled)"


def test_pairing_cancels_shared_goal_difficulty():
    """B = A + 1 point on every goal, goals of very different difficulty: the paired interval is
    exactly [1, 1], while the two agents' own intervals overlap almost entirely."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 99, 100)
    b = a + 1.0
    d = stats.paired_difference(a, b, resamples=2000, seed=0)
    assert d.ci == pytest.approx((1.0, 1.0)) and d.p_better == 1.0
    ia, ib = stats.mean_interval(a, seed=0, resamples=2000), stats.mean_interval(b, seed=0, resamples=2000)
    assert ib.ci[0] < ia.ci[1]  # separately, the intervals overlap


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(4)
    values = 100.0 * (rng.random(2000) < 0.3)
    est = stats.mean_interval(values, level=0.95, resamples=10_000, seed=0)
    p = values.mean() / 100
    half = 196 * np.sqrt(p * (1 - p) / len(values))
    assert est.value == pytest.approx(values.mean())
    assert est.ci[0] == pytest.approx(est.value - half, abs=0.3) and est.ci[1] == pytest.approx(est.value + half, abs=0.3)


def test_bootstrap_is_seeded_and_rows_do_not_move_each_other():
    rng = np.random.default_rng(5)
    rows = rng.uniform(0, 1, (3, 50))
    all_rows = stats.bootstrap_means(rows, 1500, seed=[7, 1])
    assert np.array_equal(all_rows, stats.bootstrap_means(rows, 1500, seed=[7, 1]))
    assert np.array_equal(all_rows[:, :1], stats.bootstrap_means(rows[:1], 1500, seed=[7, 1]))  # adding rows moves nothing
    assert not np.array_equal(all_rows, stats.bootstrap_means(rows, 1500, seed=[8, 1]))
    with pytest.raises(ValueError, match="finite"):
        stats.bootstrap_means([1.0, float("nan")])
    with pytest.raises(ValueError, match="level must be in"):
        stats.percentile_interval([1.0, 2.0], level=1.0)


def test_pooled_seeds_average_per_goal_and_report_spread():
    """Two seeds that split the goals between them: each alone is 50 with a wide interval; pooled,
    every goal is 50, so the goal-noise interval is [50, 50] while the seed spread stays visible."""
    seed0 = np.array([100.0, 0.0] * 20)
    seed1 = np.array([0.0, 100.0] * 20)
    pooled = stats.pool_seeds([seed0, seed1])
    assert np.array_equal(pooled, np.full(40, 50.0))
    assert stats.mean_interval(pooled, resamples=1000).ci == (50.0, 50.0)
    alone = stats.mean_interval(seed0, resamples=1000)
    assert alone.ci[0] < 40 and alone.ci[1] > 60
    spread = stats.seed_spread([seed0.mean(), seed1.mean(), 56.0])
    assert spread["values"] == [50.0, 50.0, 56.0] and spread["min"] == 50 and spread["max"] == 56
    assert spread["mean"] == pytest.approx(52.0) and spread["std"] == pytest.approx(np.std([50, 50, 56], ddof=1))
    assert stats.seed_spread([3.0])["std"] == 0.0
    with pytest.raises(ValueError, match="seeds, goals"):
        stats.pool_seeds(np.zeros((0, 4)))


# --------------------------------------------------------------------------- the command on the real environment
@pytest.fixture(scope="module")
def first_run(webshop_dir, cli_common, tmp_path_factory):
    from webshop_trl.cli.main import main

    out = tmp_path_factory.mktemp("compare") / "c"
    argv = [*cli_common, "--output", str(out), "--agent", "rule", "--agent", "random",
            "--split-mode", "product", "--split-mode", "index", "--human"]
    assert main(argv) == 0
    return out, argv, json.loads((out / "comparison.json").read_text())


def test_cli_writes_the_comparison(first_run, goals, human_goals):
    out, _, data = first_run
    assert data["format"] == "webshop-trl/comparison/v1"
    assert set(data) >= {"command", "metrics", "method", "config", "agents", "views", "evaluations"}
    assert set(data["metrics"]) == {"score", "success"}
    assert data["evaluations"] == {"new": 6, "cached": 0}
    assert [v["name"] for v in data["views"]] == ["product", "index", "human"]
    assert [v["headline"] for v in data["views"]] == [True, False, False]
    views = {v["name"]: v for v in data["views"]}
    assert views["product"]["goals"] == goals.split("test", "product")[:5]
    assert views["index"]["goals"] == [0, 1, 2, 3, 4]
    assert views["human"]["goals"] == [0, 1, 2, 3, 4] and views["human"]["goal_kind"] == "human" and len(human_goals) == 13
    assert "--split-mode product --split-mode index --human" in data["command"]
    for view in data["views"]:
        assert set(view["rows"]) == {"rule", "random"}
        for name, row in view["rows"].items():
            assert row["num_seeds"] == 1 and len(row["evaluations"]) == 1
            for metric in ("score", "success"):
                lo, hi = row[metric]["ci"]
                assert 0 <= lo <= row[metric]["value"] <= hi <= 100
                assert row[metric]["seeds"]["values"] == [pytest.approx(row[metric]["value"])]
        [pair] = view["pairs"]
        assert (pair["a"], pair["b"]) == ("rule", "random")
        for metric in ("score", "success"):
            d = pair[metric]
            assert d["value"] == pytest.approx(view["rows"]["random"][metric]["value"] - view["rows"]["rule"][metric]["value"])
            assert d["p_better"] + d["p_tie"] + d["p_worse"] == pytest.approx(1.0)
            assert d["settled"] == (d["ci"][0] > 0 or d["ci"][1] < 0)
    md = (out / "comparison.md").read_text()
    assert md.count("\n## ") == 3 and "| random − rule |" in md and "| rule | 1 |" in md
    assert "settled" in md.lower()


def test_cached_episodes_are_the_environment_rewards(first_run, webshop_dir):
    """The rule agent's cached rewards are what evaluate_agent gives on the same goals."""
    from webshop_trl.agents import RuleAgent
    from webshop_trl.evaluation import evaluate_agent

    out, _, data = first_run
    view = next(v for v in data["views"] if v["name"] == "product")
    cached = json.loads(open(view["rows"]["rule"]["evaluations"][0]["cache_file"]).read())
    config = CompareConfig(data_dir=str(webshop_dir), engine="bm25s", step_limit=10).env_config("synthetic", "text")
    direct = evaluate_agent(RuleAgent(), config, goal_indices=view["goals"], num_envs=5, progress=False)
    assert [e["reward"] for e in cached["episodes"]] == [e.reward for e in direct.episodes]
    assert view["rows"]["rule"]["score"]["value"] == pytest.approx(100 * np.mean([e.reward for e in direct.episodes]))


def test_one_more_agent_evaluates_only_it_and_seeds_pool(first_run, tiny_checkpoint, tmp_path, capsys):
    from tiny_policy import save_tiny_policy

    from webshop_trl.cli.main import main

    out, argv, before = first_run
    second = save_tiny_policy(tmp_path / "tiny-seed1", seed=1, use_value_head=False)
    capsys.readouterr()
    assert main([*argv, "--agent", f"tiny=policy:{tiny_checkpoint},{second}"]) == 0
    printed = capsys.readouterr()
    data = json.loads((out / "comparison.json").read_text())
    assert data["evaluations"] == {"new": 6, "cached": 6}  # 2 seeds x 3 views new; rule and random reused
    assert "6 evaluations run, 6 reused" in printed.err
    assert "| tiny | 2 |" in printed.out
    for old, new in zip(before["views"], data["views"]):
        for name in ("rule", "random"):  # same episodes, same resampled goals: identical rows
            assert {m: new["rows"][name][m] for m in ("score", "success")} == {m: old["rows"][name][m] for m in ("score", "success")}
        row = new["rows"]["tiny"]
        assert row["num_seeds"] == 2 and [e["seed_index"] for e in row["evaluations"]] == [0, 1]
        per_seed = [e["score"] for e in row["evaluations"]]
        assert row["score"]["seeds"]["values"] == pytest.approx(per_seed)
        assert row["score"]["value"] == pytest.approx(np.mean(per_seed))
        assert [(p["a"], p["b"]) for p in new["pairs"]] == [("rule", "random"), ("rule", "tiny"), ("random", "tiny")]
    # renaming an agent reuses its evaluations (the cache key holds what it does, not its name)
    assert main([*argv[: argv.index("random")], "rnd=random", *argv[argv.index("random") + 1:]]) == 0
    assert json.loads((out / "comparison.json").read_text())["evaluations"] == {"new": 0, "cached": 6}


def test_corrupt_cache_file_is_named(first_run, capsys):
    from webshop_trl.cli.main import main

    out, argv, data = first_run
    path = data["views"][0]["rows"]["random"]["evaluations"][0]["cache_file"]
    original = open(path).read()
    try:
        with open(path, "w") as f:
            f.write(original[: len(original) // 2])  # truncated
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "\n".join(err)
        assert err[-1].startswith(f"webshop-trl compare: error: cached evaluation {path} is corrupt")
        with open(path, "w") as f:
            f.write(original.replace('"reward": ', '"reward": 7', 1))  # a reward outside [0, 1]
        assert main(argv) == 2
        assert "is corrupt (bad episode records" in capsys.readouterr().err
    finally:
        with open(path, "w") as f:
            f.write(original)


def test_python_api(webshop_dir, tmp_path):
    config = CompareConfig(data_dir=str(webshop_dir), engine="bm25s", step_limit=10, max_goals=3, resamples=500)
    comparison = compare_agents(["rule", "rnd=random"], config, output_dir=tmp_path)
    data = json.loads(json.dumps(comparison.to_dict()))
    assert [v["name"] for v in data["views"]] == ["product"] and data["views"][0]["num_goals"] == 3
    assert "| rnd − rule |" in comparison.to_markdown()
    assert len(list((tmp_path / "evaluations").glob("*.json"))) == 2
