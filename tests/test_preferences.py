"""Preference pairs from trajectories (webshop_trl.preferences, `webshop-trl build-preferences`):
rows and columns, reference-policy and uniform rejection, determinism, the split by goal, clear
errors, the card and build info, atomic saving (a killed build leaves no loadable output).

Real expert demonstrations (8 train goals, noise on, the real 1k catalog) and a tiny random
reference policy (2-layer BERT, hidden 32) saved to a temp folder; the Hub push is in
test_preferences_hub.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict, load_from_disk

from webshop_trl.cli.main import main
from webshop_trl.datasets import DecisionStep
from webshop_trl.errors import DataFileError
from webshop_trl.policy import ActionScorerModel
from webshop_trl.preferences import (
    COLUMNS,
    REFERENCE_LOG_PROB_COLUMNS,
    FORMAT_ID,
    PreferenceBuildConfig,
    PreferenceBuildError,
    ReferencePolicyRejector,
    UniformRejector,
    build_preferences,
    is_preference_folder,
    load_preferences,
    save_preferences,
    split_goals,
    stale_temp_folders,
    weights_fingerprint,
)
from webshop_trl.preferences.rejection import _sample
from webshop_trl.trajectories import Step, Trajectory, read_trajectories, write_trajectories

from tiny_policy import tiny_policy  # tests/ is on sys.path under pytest

REPO = Path(__file__).resolve().parents[1]
GOALS = list(range(1500, 1508))

pytestmark = pytest.mark.usefixtures("one_thread")


def make_policy(seed: int = 0) -> ActionScorerModel:
    """The shared tiny policy, 2 layers, with a value head, in eval mode."""
    return tiny_policy(seed, num_hidden_layers=2, max_observation_length=64, max_instruction_length=24, max_action_length=12)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("preferences")


@pytest.fixture(scope="module")
def demos(workdir, webshop_dir) -> Path:
    from webshop_trl.envs import WebShopConfig, WebShopEnv
    from webshop_trl.experts import ExpertConfig, write_expert_demos

    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich"))
    path = workdir / "demos.jsonl"
    write_expert_demos(path, GOALS, ExpertConfig(seed=3).noisy(), env=env)
    return path


@pytest.fixture(scope="module")
def policy_dir(workdir) -> Path:
    path = workdir / "tiny-policy"
    make_policy().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def policy(policy_dir) -> ActionScorerModel:
    return ActionScorerModel.from_pretrained(policy_dir).eval()


@pytest.fixture(scope="module")
def uniform(demos):
    return build_preferences(PreferenceBuildConfig([str(demos)], rejection="uniform", eval_fraction=0.25, seed=0))


@pytest.fixture(scope="module")
def greedy(demos, policy_dir):
    return build_preferences(PreferenceBuildConfig([str(demos)], reference_model=str(policy_dir), eval_fraction=0.25, batch_size=8))


def all_rows(dd: DatasetDict) -> list[dict]:
    return [r for split in ("train", "eval") for r in dd[split]]


def odd_trajectory(index: int = 9000, kind: str = "synthetic") -> Trajectory:
    """Search steps, a single-candidate page, a page whose only other candidate has the chosen
    action's text, an unusable click and a normal page."""
    return Trajectory(
        goal={"index": index, "kind": kind},
        steps=[
            Step("search page", ["search[<query>]"], "search[red shoes]"),
            Step("only one", ["search[<query>]", "click[buy now]"], "click[buy now]"),
            Step("twice", ["click[small]", "click[small]"], "click[small]"),
            Step("gone", ["click[a]", "click[b]"], "click[not there]"),
            Step("normal", ["click[back to search]", "click[< prev]", "click[large]"], "click[large]"),
        ],
        final_reward=0.5,
        source="hand",
    )


# --------------------------------------------------------------------------- rows
def test_rows_are_the_demonstrated_decisions(demos, uniform):
    dd = uniform.dataset
    assert isinstance(dd, DatasetDict) and set(dd) == {"train", "eval"}
    assert dd["train"].column_names == list(COLUMNS)
    # every click decision of the demos, in order: prompt, chosen, step, goal, source
    expected = []
    for traj in read_trajectories(demos):
        for i, step in enumerate(traj.steps):
            if step.action.startswith("click["):
                expected.append((traj.goal["index"], i, step.observation, step.action, round(traj.final_reward, 5)))
    rows = all_rows(dd)
    assert sorted((r["goal_index"], r["step"], r["prompt"], r["chosen"], round(r["reward"], 5)) for r in rows) == sorted(expected)
    for r in rows:
        assert r["available_actions"][r["chosen_index"]] == r["chosen"]
        assert r["available_actions"][r["rejected_index"]] == r["rejected"]
        assert r["rejected"] != r["chosen"] and r["rejected"].startswith("click[")
        assert r["source"] == "expert" and r["reference_agreed"] is None
        assert all(a.startswith("click[") for a in r["available_actions"]) and 2 <= len(r["available_actions"]) <= 20
    c = uniform.info["counts"]
    assert c["trajectories"] == len(GOALS) and c["rows"]["train"] + c["rows"]["eval"] == len(rows) == c["pairs"]
    assert c["not_choice_steps"] == c["steps"] - c["decision_steps"] - c["invalid_steps"] > 0
    assert uniform.info["reference_log_probs"] is None and "ref_chosen_logps" not in uniform.info["columns"]


def test_uniform_rejection_is_uniform_over_the_other_candidates():
    step = DecisionStep("page", [f"click[{i}]" for i in range(5)], label=2, goal_index=1, step=0, source="x", reward=0.0)
    counts = Counter(r.index for r in UniformRejector(seed=0).reject([step] * 5000, [f"k{i}" for i in range(5000)]))
    assert set(counts) == {0, 1, 3, 4}
    assert all(abs(n / 5000 - 0.25) < 0.03 for n in counts.values())


def test_reference_rejection_is_the_reference_argmax(greedy, policy):
    rows = all_rows(greedy.dataset)
    log_probs = policy.score([r["prompt"] for r in rows], [r["available_actions"] for r in rows], batch_size=16)
    agreed = 0
    for r, lp in zip(rows, log_probs):
        top = int(torch.argmax(lp))
        assert r["reference_agreed"] == (top == r["chosen_index"])
        if top != r["chosen_index"]:
            assert r["rejected_index"] == top  # what the reference would do
        else:
            agreed += 1
            others = [i for i in range(len(lp)) if i != r["chosen_index"]]
            assert r["rejected_index"] == max(others, key=lambda i: float(lp[i]))  # its best other action
    info = greedy.info
    assert info["counts"]["reference_agreed"] == agreed
    assert math.isclose(info["reference_agreement"], agreed / len(rows))
    ref = info["rejection"]["reference"]
    assert info["rejection"]["method"] == "reference" and info["rejection"]["decoding"] == "greedy"
    assert list(ref["weights_sha256"]) == ["model.safetensors"] and ref["parameters"] == sum(p.numel() for p in policy.parameters())
    # the reference's log-probs of chosen and rejected are stored (over the row's capped candidates), with what made them
    assert greedy.dataset["train"].column_names == list(COLUMNS) + list(REFERENCE_LOG_PROB_COLUMNS)
    chosen = torch.tensor([float(lp[r["chosen_index"]]) for r, lp in zip(rows, log_probs)])
    rejected = torch.tensor([float(lp[r["rejected_index"]]) for r, lp in zip(rows, log_probs)])
    torch.testing.assert_close(torch.tensor([r["ref_chosen_logps"] for r in rows]), chosen, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor([r["ref_rejected_logps"] for r in rows]), rejected, rtol=1e-5, atol=1e-5)
    record = info["reference_log_probs"]
    assert record["weights_fingerprint"] == weights_fingerprint(policy) == ref["weights_fingerprint"]
    assert record["weights_sha256"] == ref["weights_sha256"] and record["precision"] == "fp32"
    assert record["processor"]["max_observation_length"] == 64 and record["reference"] == greedy.info["config"]["reference_model"]


def test_reference_agreeing_page_gets_the_best_other_or_is_dropped(demos, policy_dir, greedy):
    step = DecisionStep("page", ["click[a]", "click[b]", "click[a]", "click[c]"], label=0, goal_index=1, step=0, source="x", reward=0.0)
    rej = ReferencePolicyRejector(make_policy())
    r = rej.choose(step, [math.log(0.5), math.log(0.1), math.log(0.3), math.log(0.1)], "k")
    # argmax is the chosen action; index 2 has the chosen text too, so the best *other* is b (first of the tie)
    assert (r.reference_index, r.agreed, r.index) == (0, True, 1)
    r = rej.choose(step, [math.log(0.1), math.log(0.2), math.log(0.1), math.log(0.6)], "k")
    assert (r.reference_index, r.agreed, r.index) == (3, False, 3)

    skipped = build_preferences(PreferenceBuildConfig([str(demos)], reference_model=str(policy_dir), eval_fraction=0.25,
                                                      batch_size=8, skip_agreeing=True))
    kept = [r for r in all_rows(greedy.dataset) if not r["reference_agreed"]]
    assert all_rows(skipped.dataset) == kept
    assert skipped.info["counts"]["agreeing_skipped"] == greedy.info["counts"]["reference_agreed"]


def test_sampled_reference_rejection(demos, policy, greedy):
    config = PreferenceBuildConfig([str(demos)], reference_model="tiny", temperature=1.0, eval_fraction=0.25)
    a = build_preferences(config, reference_model=policy)
    b = build_preferences(config, reference_model=policy)
    assert all_rows(a.dataset) == all_rows(b.dataset)
    other_seed = build_preferences(PreferenceBuildConfig(**{**config.__dict__, "seed": 5}), reference_model=policy)
    assert [r["rejected"] for r in all_rows(other_seed.dataset)] != [r["rejected"] for r in all_rows(a.dataset)]
    assert all(r["rejected"] != r["chosen"] for r in all_rows(a.dataset))
    assert a.info["rejection"]["decoding"] == "sampled, temperature 1"
    # a tiny temperature is the argmax (where the top score is unique: the tiny vocabulary reads
    # every ASIN as [UNK], so some candidates tie, and greedy takes the first of a tie)
    cold = build_preferences(PreferenceBuildConfig(**{**config.__dict__, "temperature": 1e-6}), reference_model=policy)
    rows = all_rows(greedy.dataset)
    log_probs = policy.score([r["prompt"] for r in rows], [r["available_actions"] for r in rows], batch_size=16)
    def unique_choice(r, lp):
        others = torch.tensor([i != r["chosen_index"] for i in range(len(lp))])
        return int((lp == lp.max()).sum()) == 1 and int((lp[others] == lp[others].max()).sum()) == 1

    unique = [unique_choice(r, lp) for r, lp in zip(rows, log_probs)]
    assert sum(unique) > len(rows) // 2
    assert [r["rejected"] for r, u in zip(all_rows(cold.dataset), unique) if u] == [r["rejected"] for r, u in zip(rows, unique) if u]


def test_sample_follows_the_tempered_distribution():
    rng = random.Random(0)
    lp = [math.log(0.6), math.log(0.3), math.log(0.1)]
    draws = Counter(_sample(rng, lp, range(3), 1.0) for _ in range(6000))
    assert all(abs(draws[i] / 6000 - p) < 0.025 for i, p in enumerate((0.6, 0.3, 0.1)))
    draws = Counter(_sample(rng, lp, [1, 2], 2.0) for _ in range(6000))  # renormalised over the others, T = 2
    p1 = math.sqrt(0.3) / (math.sqrt(0.3) + math.sqrt(0.1))
    assert set(draws) == {1, 2} and abs(draws[1] / 6000 - p1) < 0.025


# --------------------------------------------------------------------------- determinism and split
def test_deterministic_given_the_seed(demos, policy, greedy, uniform):
    again = build_preferences(PreferenceBuildConfig([str(demos)], rejection="uniform", eval_fraction=0.25, seed=0))
    assert all_rows(again.dataset) == all_rows(uniform.dataset)
    assert again.info["rows_sha256"] == uniform.info["rows_sha256"]
    other = build_preferences(PreferenceBuildConfig([str(demos)], rejection="uniform", eval_fraction=0.25, seed=1))
    assert other.info["rows_sha256"] != uniform.info["rows_sha256"]
    # the reference's choices do not depend on the batch size
    one_by_one = build_preferences(PreferenceBuildConfig([str(demos)], reference_model="tiny", eval_fraction=0.25, batch_size=1),
                                   reference_model=policy)
    def without_log_probs(rows):
        return [{k: v for k, v in r.items() if k not in REFERENCE_LOG_PROB_COLUMNS} for r in rows]

    assert without_log_probs(all_rows(one_by_one.dataset)) == without_log_probs(all_rows(greedy.dataset))
    for column in REFERENCE_LOG_PROB_COLUMNS:  # (other padding: equal up to float rounding)
        torch.testing.assert_close(torch.tensor([r[column] for r in all_rows(one_by_one.dataset)]),
                                   torch.tensor([r[column] for r in all_rows(greedy.dataset)]), rtol=1e-5, atol=1e-5)


def test_split_by_goal(demos, uniform, workdir):
    dd = uniform.dataset
    train_goals, eval_goals = set(dd["train"]["goal_index"]), set(dd["eval"]["goal_index"])
    assert not train_goals & eval_goals and len(eval_goals) == 2 and len(train_goals) == len(GOALS) - 2
    assert uniform.info["split"]["eval_goals"] == [f"synthetic:{g}" for g in sorted(eval_goals)]
    no_eval = build_preferences(PreferenceBuildConfig([str(demos)], rejection="uniform", eval_fraction=0))
    assert no_eval.dataset["eval"].num_rows == 0 and no_eval.dataset["train"].num_rows == sum(dd.num_rows.values())
    # the same index under two goal kinds is two goals
    keys = [f"synthetic:{i}" for i in range(50)] + [f"human:{i}" for i in range(50)]
    chosen = split_goals(keys, 0.1, seed=0)
    assert len(chosen) == 10 and chosen != split_goals(keys, 0.1, seed=1)
    assert split_goals(keys[:1], 0.5, 0) == set() and len(split_goals(keys[:2], 0.01, 0)) == 1
    # a goal's rank does not depend on the others: more goals keep most eval goals in eval
    assert len(chosen & split_goals(keys + [f"synthetic:{i}" for i in range(50, 60)], 0.1, 0)) >= 8


def test_several_inputs_and_unusable_steps(demos, workdir):
    odd = workdir / "odd.jsonl"
    write_trajectories(odd, [odd_trajectory(), odd_trajectory(9001, "human"), odd_trajectory(GOALS[0])])
    built = build_preferences(PreferenceBuildConfig([str(demos), str(odd)], rejection="uniform", eval_fraction=0))
    rows = all_rows(built.dataset)
    hand = [r for r in rows if r["source"] == "hand"]
    assert [(r["goal_index"], r["step"], r["chosen"]) for r in hand] == [(9000, 4, "click[large]"), (9001, 4, "click[large]"),
                                                                         (GOALS[0], 4, "click[large]")]
    assert rows[-3:] == hand  # input order: the demos first
    c = built.info["counts"]
    assert c["single_candidate"] == 6 and c["invalid_steps"] == 3  # "only one" and "twice" x3; "gone" x3
    assert c["rows_by_source"]["hand"] == 3
    # a goal seen in two files sits in one split
    for seed in range(4):
        halves = build_preferences(PreferenceBuildConfig([str(demos), str(odd)], rejection="uniform", eval_fraction=0.5, seed=seed))
        where = {s for s in ("train", "eval") if GOALS[0] in halves.dataset[s]["goal_index"]}
        assert len(where) == 1 and sum(r["goal_index"] == GOALS[0] for r in halves.dataset[where.pop()]) > 1
    assert [i["path"] for i in built.info["inputs"]] == [str(demos), str(odd)]
    assert any("odd.jsonl: trajectory 1 step 3: chosen action not among the candidates" in s for s in built.skipped)


# --------------------------------------------------------------------------- errors
def test_clear_errors(demos, workdir, policy_dir):
    def build(**kw):
        return build_preferences(PreferenceBuildConfig(**{"inputs": [str(demos)], "rejection": "uniform", **kw}))

    with pytest.raises(DataFileError, match="trajectory file not found: .*nope.jsonl"):
        build(inputs=[str(demos), str(workdir / "nope.jsonl")])
    bad = workdir / "bad.jsonl"
    lines = demos.read_text().splitlines()
    bad.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n")
    with pytest.raises(DataFileError, match=r"bad\.jsonl:2: malformed trajectory"):
        build(inputs=[str(bad)])
    lenient = build(inputs=[str(bad)], lenient=True)
    assert lenient.info["counts"]["malformed_lines"] == 1 and lenient.info["counts"]["trajectories"] == 2
    with pytest.raises(PreferenceBuildError, match="more than once"):
        build(inputs=[str(demos), str(demos)])
    with pytest.raises(PreferenceBuildError, match="needs a reference policy"):
        build(rejection="reference")
    with pytest.raises(PreferenceBuildError, match="temperature only apply"):
        build(temperature=1.0)
    with pytest.raises(PreferenceBuildError, match="eval_fraction"):
        build(eval_fraction=1.0)
    with pytest.raises(PreferenceBuildError, match="unknown rejection"):
        build(rejection="random")
    searches = workdir / "searches.jsonl"
    write_trajectories(searches, [Trajectory(goal={"index": 1}, steps=[Step("s", ["search[<query>]"], "search[x]")])])
    with pytest.raises(PreferenceBuildError, match="no choice decisions"):
        build(inputs=[str(searches)])
    with pytest.raises(PreferenceBuildError, match="reference model folder not found"):
        build(rejection="reference", reference_model=str(workdir / "no-model"))
    plain = workdir / "plain-bert"
    make_policy().text_encoder.save_pretrained(plain)
    with pytest.raises(PreferenceBuildError, match="is a bert checkpoint, not an ActionScorerModel"):
        build(rejection="reference", reference_model=str(plain))
    weights_only = workdir / "weights-only"
    make_policy().save_pretrained(weights_only)
    for f in weights_only.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    with pytest.raises(PreferenceBuildError, match="no tokenizer files"):
        build(rejection="reference", reference_model=str(weights_only))


# --------------------------------------------------------------------------- saving
def test_a_saved_dataset_without_eval_pairs_loads_and_trains_without_evaluation(demos, workdir):
    from types import SimpleNamespace

    from webshop_trl.trainers.dpo_data import load_preference_datasets

    # one goal (or eval_fraction 0) leaves the eval split empty; datasets wrote no shard for it and
    # load_from_disk then failed with an IndexError (the pipeline's dpo-self on one self-generated trajectory)
    no_eval = build_preferences(PreferenceBuildConfig([str(demos)], rejection="uniform", eval_fraction=0))
    out = save_preferences(no_eval, workdir / "no-eval")
    loaded = load_from_disk(str(out))
    assert loaded["eval"].num_rows == 0 and loaded["train"].num_rows == no_eval.dataset["train"].num_rows
    script_args = SimpleNamespace(dataset_name=str(out), dataset_config=None, dataset_revision=None, dataset_train_split="train",
                                  dataset_test_split="eval", min_reward=None, max_train_samples=None, max_eval_samples=None)
    training_args = SimpleNamespace(data_seed=None, seed=0)
    train, eval_ = load_preference_datasets(script_args, training_args)
    assert len(train) == no_eval.dataset["train"].num_rows and eval_ is None


def test_save_card_and_build_info(greedy, workdir, demos):
    out = save_preferences(greedy, workdir / "saved")
    loaded = DatasetDict.load_from_disk(str(out))
    assert all_rows(loaded) == all_rows(greedy.dataset) and load_from_disk(str(out))["eval"].num_rows > 0
    info = json.loads((out / "build_info.json").read_text())
    assert info["format"] == FORMAT_ID and info["inputs"][0]["sha256"] == greedy.info["inputs"][0]["sha256"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "- webshop" in card
    for text in (info["inputs"][0]["sha256"], "Reference policy", "its best other action", "seed 0",
                 f"| train | {info['counts']['rows']['train']} |", "model.safetensors", "webshop-trl 0.1.0",
                 info["rows_sha256"]["train"], "## Reference log-probabilities", info["reference_log_probs"]["weights_fingerprint"]):
        assert text in card, text
    dataset, info2, card2 = load_preferences(out)
    assert info2 == info and card2 == card and dataset.num_rows == loaded.num_rows
    # an existing output is kept unless --overwrite, and only our own folders are overwritten
    with pytest.raises(DataFileError, match="already exists"):
        save_preferences(greedy, out)
    save_preferences(greedy, out, overwrite=True)
    assert is_preference_folder(out) and not stale_temp_folders(out)
    assert not [p for p in out.parent.iterdir() if ".old-" in p.name or ".tmp-" in p.name]
    other = workdir / "not-ours"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataFileError, match="not a preference dataset"):
        save_preferences(greedy, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"


def test_failed_save_leaves_the_previous_state(uniform, workdir):
    out = workdir / "atomic"

    def fail(tmp):
        assert load_from_disk(str(tmp))["train"].num_rows > 0  # complete in the temp folder ...
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        save_preferences(uniform, out, before_rename=fail)
    assert not out.exists() and not stale_temp_folders(out)  # ... and nothing at the output path
    save_preferences(uniform, out)
    before = (out / "build_info.json").read_text()
    with pytest.raises(RuntimeError):
        save_preferences(uniform, out, overwrite=True, before_rename=fail)
    assert (out / "build_info.json").read_text() == before and load_from_disk(str(out))["train"].num_rows > 0


KILL_SCRIPT = r"""
import sys, time
from webshop_trl.preferences import PreferenceBuildConfig, build_preferences, save_preferences
built = build_preferences(PreferenceBuildConfig([sys.argv[1]], rejection="uniform"))
def hang(tmp):
    print("READY", tmp, flush=True)
    time.sleep(60)
save_preferences(built, sys.argv[2], before_rename=hang)
"""


def test_killed_build_leaves_no_loadable_output(demos, workdir, capsys):
    out = workdir / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(demos), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), line + proc.stderr.read()
        tmp = Path(line.split(maxsplit=1)[1].strip())
        assert tmp.name.startswith("killed.tmp-") and (tmp / "dataset_dict.json").is_file()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        load_from_disk(str(out))
    assert stale_temp_folders(out) == [tmp]
    # the next build says so, and writes its own complete dataset
    assert main(["build-preferences", str(demos), "--rejection", "uniform", "--output", str(out), "--quiet"]) == 0
    assert "left by an interrupted build" in capsys.readouterr().err
    assert load_from_disk(str(out))["train"].num_rows > 0


# --------------------------------------------------------------------------- command line
def test_cli_reference_build(demos, policy_dir, workdir, capsys, greedy):
    out = workdir / "cli-greedy"
    code = main(["build-preferences", str(demos), "--reference_model", str(policy_dir), "--eval-fraction", "0.25",
                 "--batch-size", "8", "--output", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "choice decisions" in text and "reference chose the demonstrated action" in text and f"saved {out}" in text
    assert all_rows(load_from_disk(str(out))) == all_rows(greedy.dataset)
    info = json.loads((out / "build_info.json").read_text())
    assert info["command"] == (f"webshop-trl build-preferences {demos} --output {out} --rejection reference --reference-model "
                               f"{policy_dir} --batch-size 8 --eval-fraction 0.25 --seed 0 --max-candidates 20")
    assert "```bash\n" in (out / "README.md").read_text()


def test_cli_errors(demos, workdir, capsys):
    assert main(["build-preferences", str(demos), "--output", str(workdir / "x"), "--quiet"]) == 2
    assert "needs a reference policy checkpoint" in capsys.readouterr().err
    assert main(["build-preferences", str(workdir / "missing.jsonl"), "--rejection", "uniform", "--output", str(workdir / "x")]) == 2
    assert "trajectory file not found" in capsys.readouterr().err
    assert main(["build-preferences", str(demos), "--rejection", "uniform", "--output", str(workdir / "x"), "--push-to-hub"]) == 2
    assert "--hub-dataset-id" in capsys.readouterr().err
    assert main(["build-preferences", "--output", str(workdir / "x")]) == 2
    assert "give one or more trajectory files" in capsys.readouterr().err
    assert not (workdir / "x").exists()


def test_standalone_script(demos, workdir, uniform):
    spec = importlib.util.spec_from_file_location("build_preferences_script", REPO / "datasets_build" / "build_preferences.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = workdir / "script"
    assert script.main([str(demos), "--rejection", "uniform", "--eval_fraction", "0.25", "--output", str(out), "-q"]) == 0
    assert load_from_disk(str(out))["train"]["rejected"] == uniform.dataset["train"]["rejected"]
