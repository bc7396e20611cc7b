"""`webshop-trl pipeline`: settings and budgets, the stage commands, the reusing runner, and the
whole pipeline end to end on the tiny random policy (tests/tiny_policy.py).

The runner's rules (markers, reuse, reruns downstream of a change, interrupted stages, failures)
are checked on stand-in stages (``python -c`` one-liners) so they take a second; the end-to-end
test runs every real stage at the ``tiny`` budget (a few goals, 1-2 steps each): eleven
subprocesses of about 10 s each on a 2-core machine.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from webshop_trl.cli.main import build_parser, main
from webshop_trl.pipeline import BUDGETS, STAGE_NAMES, STAGES, PipelineConfig, PipelineError, PipelineRunner, StageFailed
from webshop_trl.pipeline.config import PipelineConfigError, apply_overrides
from webshop_trl.pipeline.runner import load_marker
from webshop_trl.pipeline.stages import Layout, Stage, dependants


# --------------------------------------------------------------------------- settings and budgets
def test_budgets_and_overrides():
    small = PipelineConfig.from_budget("small")
    assert small == PipelineConfig()  # the field defaults are the small budget
    assert (small.il_steps, small.expert_trajectories, small.self_trajectories, small.dpo_steps, small.ppo_updates) == (None, 300, 100, 200, 3)
    assert (small.thompson_runs, small.thompson_rollouts, small.thompson_rollouts_per_round) == (2, 100, 8)
    assert 31.5 <= BUDGETS["small"].total_minutes <= 50  # at least the measured idle run (31:29), not far above it
    assert set(BUDGETS["small"].minutes) == set(BUDGETS["paper"].minutes) == set(BUDGETS["tiny"].minutes) == set(STAGE_NAMES)
    paper = PipelineConfig.from_budget("paper")
    assert (paper.expert_trajectories, paper.dpo_steps, paper.il_steps, paper.thompson_runs, paper.thompson_rollouts) == (1200, None, None, 4, 1000)
    changed = apply_overrides(small, ["dpo_steps=2", "bf16=false", "il_steps=250", "self_temperature=0.5", "data-dir=/x"])
    assert (changed.dpo_steps, changed.bf16, changed.il_steps, changed.self_temperature, changed.data_dir) == (2, False, 250, 0.5, "/x")
    assert changed.budget == "small" and small.dpo_steps == 200
    with pytest.raises(PipelineConfigError, match="unknown setting"):
        apply_overrides(small, ["dpo_step=2"])
    with pytest.raises(PipelineConfigError, match="KEY=VALUE"):
        apply_overrides(small, ["dpo_steps"])
    with pytest.raises(PipelineConfigError, match="not a valid int"):
        apply_overrides(small, ["dpo_steps=many"])
    with pytest.raises(PipelineConfigError, match="dpo_steps must be >= 1"):
        apply_overrides(small, ["dpo_steps=0"])
    with pytest.raises(PipelineConfigError, match="unknown budget"):
        PipelineConfig.from_budget("huge")
    assert all(f.metadata.get("help") for f in dataclasses.fields(PipelineConfig))


def _args(cmd: list[str]) -> list[str]:
    """The arguments after ``python -m module``."""
    assert cmd[0] == sys.executable and cmd[1] == "-m"
    return cmd[3:]


def test_stage_commands_carry_the_budget_and_parse(tmp_path):
    from webshop_trl.scripts import dpo, il, ppo

    config = PipelineConfig.from_budget("small")
    L = Layout(tmp_path)
    cmds = {s.name: s.command(config, L) for s in STAGES}
    assert cmds["demos-expert"][cmds["demos-expert"].index("--num-goals") + 1] == "300"
    assert "--noise" in cmds["demos-il"] and "--num-goals" not in cmds["demos-il"]  # IL: every train goal
    il_args = _args(cmds["il"])
    assert "--max_steps" not in il_args  # small IL is the recipe's 500 updates
    il_stage = next(s for s in STAGES if s.name == "il")
    cut = _args(il_stage.command(PipelineConfig.from_budget("small", il_steps=250), L))
    assert cut[cut.index("--max_steps") + 1] == "250" and cut[cut.index("--max_train_samples") + 1] == "2000"
    assert il_args[il_args.index("--encoder_name_or_path") + 1] == config.base_model
    assert cmds["demos-self"][cmds["demos-self"].index("--num-keep") + 1] == "100"
    dpo_args = _args(cmds["dpo-expert"])
    assert dpo_args[dpo_args.index("--max_steps") + 1] == "200" and dpo_args[dpo_args.index("--max_train_samples") + 1] == "800"
    assert dpo_args[dpo_args.index("--dataset_name") + 1] == str(L.prefs_expert)
    assert _args(cmds["dpo-self"])[_args(cmds["dpo-self"]).index("--dataset_name") + 1] == str(L.prefs_self)
    assert _args(cmds["ppo"])[_args(cmds["ppo"]).index("--num_updates") + 1] == "3"
    th = _args(cmds["thompson"])
    assert th[th.index("--runs") + 1] == "2" and th[th.index("--rollouts") + 1] == "100" and th[th.index("--per-round") + 1] == "8"
    assert [th[i + 1].split("=")[0] for i, x in enumerate(th) if x == "--agent"] == ["rule", "il", "dpo-expert", "dpo-self", "ppo"]
    # every command parses with the command's own parser (no unknown or misspelt option)
    parser = build_parser()
    for name in ("demos-il", "demos-expert", "demos-self", "prefs-expert", "prefs-self", "compare", "thompson"):
        parser.parse_args(_args(cmds[name]))
    # the product split (unseen test products) everywhere, the comparison with the index split and human goals beside it
    for name in ("demos-il", "demos-expert", "demos-self", "thompson"):
        args = _args(cmds[name])
        assert args[args.index("--split-mode") + 1] == "product", name
    cmp = _args(cmds["compare"])
    assert [cmp[i + 1] for i, x in enumerate(cmp) if x == "--split-mode"] == ["product", "index"] and "--human" in cmp
    assert cmp[cmp.index("--max-goals") + 1] == "200" and cmp[cmp.index("--split") + 1] == "test"
    assert [cmp[i + 1].split("=")[0] for i, x in enumerate(cmp) if x == "--agent"] == ["rule", "il", "dpo-expert", "dpo-self", "ppo"]
    ppo_cmd = _args(cmds["ppo"])
    assert ppo_cmd[ppo_cmd.index("--goal_split_mode") + 1] == "product"
    index = {s.name: _args(s.command(PipelineConfig.from_budget("small", split_mode="index"), L)) for s in STAGES}
    assert index["demos-il"][index["demos-il"].index("--split-mode") + 1] == "index"
    assert [index["compare"][i + 1] for i, x in enumerate(index["compare"]) if x == "--split-mode"] == ["index", "product"]
    with pytest.raises(PipelineConfigError, match="split_mode"):
        PipelineConfig.from_budget("small", split_mode="goal")
    for module, name in ((il, "il"), (dpo, "dpo-expert"), (ppo, "ppo")):
        script_args, training_args, model_args = module.make_parser().parse_args_and_config(_args(cmds[name]))
        assert training_args.output_dir == str(getattr(L, name.replace("-", "_")))
    # dpo_sft_weight adds TRL's 'sft' loss to the recipe's (RPO); 0, the default, is plain DPO as the paper
    assert "--loss_type" not in dpo_args
    rpo = _args(next(s for s in STAGES if s.name == "dpo-expert").command(PipelineConfig.from_budget("small", dpo_sft_weight=0.5), L))
    assert rpo[rpo.index("--loss_type"):rpo.index("--loss_type") + 6] == ["--loss_type", "sigmoid", "sft", "--loss_weights", "1.0", "0.5"]
    _, rpo_args, _ = dpo.make_parser().parse_args_and_config(rpo)
    assert (list(rpo_args.loss_type), list(rpo_args.loss_weights)) == (["sigmoid", "sft"], [1.0, 0.5])
    with pytest.raises(PipelineConfigError, match="dpo_sft_weight"):
        PipelineConfig.from_budget("small", dpo_sft_weight=-1.0)
    # the long stages print plain progress lines into their logs; the flag is not part of the stage's hash
    assert "--progress-lines" in cmds["demos-self"] and "--progress-lines" in cmds["thompson"]
    runner = PipelineRunner(config, L.root)
    assert all("--progress-lines" not in runner.params(s, {})["command"] for s in STAGES)
    # the paper budget leaves the recipes' sizes alone
    paper = {s.name: s.command(PipelineConfig.from_budget("paper"), L) for s in STAGES}
    assert "--max_steps" not in paper["il"] and "--max_steps" not in paper["dpo-expert"] and "--num_updates" not in paper["ppo"]
    assert dependants({"il"}) == set(STAGE_NAMES) - {"demos-il", "demos-expert"}
    assert dependants({"dpo-self"}) == {"dpo-self", "compare", "thompson", "report"}


def test_a_policy_checkpoint_as_base_model_continues_from_it(tiny_checkpoint, tmp_path):
    config = apply_overrides(PipelineConfig(), [f"base_model={tiny_checkpoint}"])
    cmd = next(s for s in STAGES if s.name == "il").command(config, Layout(tmp_path))
    assert cmd[cmd.index("--model_name_or_path") + 1] == str(tiny_checkpoint) and "--encoder_name_or_path" not in cmd


# --------------------------------------------------------------------------- the runner, on stand-in stages
def _writer(name: str, field: str, reads: str | None = None, fail: bool = False):
    """A stage command writing <root>/<name>.txt = (content of <reads>.txt) + the field's value."""
    def command(c: PipelineConfig, L: Layout) -> list[str]:
        code = (
            "import pathlib, sys\n"
            f"root = pathlib.Path({str(L.root)!r})\n"
            f"prev = (root / '{reads}.txt').read_text() if {reads!r} else ''\n"
            f"print('working on {name}')\n"
            + ("print('something went wrong: boom'); sys.exit(3)\n" if fail else "")
            + f"(root / '{name}.txt').write_text(prev + '{name}=' + str({getattr(c, field)!r}) + ';')\n"
        )
        return [sys.executable, "-c", code]
    return command


def fake_stages(fail: str | None = None) -> tuple[Stage, ...]:
    spec = [("demos-il", "seed", None, ()), ("demos-expert", "thompson_runs", None, ()),
            ("il", "dpo_steps", "demos-il", ("demos-il",)), ("demos-self", "ppo_updates", "il", ("il",))]
    return tuple(
        Stage(name, f"stand-in {name}", deps, (field,), _writer(name, field, reads, fail == name),
              (lambda n: lambda L: [L.root / f"{n}.txt"])(name),
              summarize=(lambda n: lambda L: {"chars": len((L.root / f"{n}.txt").read_text())})(name))
        for name, field, reads, deps in spec
    )


def run_fake(tmp_path, config=None, fail=None, **kwargs):
    runner = PipelineRunner(config or PipelineConfig.from_budget("tiny"), tmp_path, stages=fake_stages(fail), quiet=True,
                            poll_seconds=0.05)
    return {o.name: o.action for o in runner.run(**kwargs)}, runner


def test_markers_reuse_and_reruns_downstream_of_a_change(tmp_path):
    config = PipelineConfig.from_budget("tiny")
    done, runner = run_fake(tmp_path, config)
    assert set(done.values()) == {"ran"}
    L = runner.layout
    marker = load_marker(L.marker("il"))
    assert marker["params"]["settings"] == {"dpo_steps": 2} and marker["summary"] == {"chars": len("demos-il=0;il=2;")}
    assert marker["outputs"] == ["il.txt"] and marker["wall_seconds"] >= 0 and len(marker["hash"]) == 16
    assert (L.logs / "il.log").read_text().splitlines()[-1] == "working on il"  # after the command header
    assert json.loads(L.config_json.read_text())["config"]["budget"] == "tiny"
    # a rerun with the same settings reuses everything
    assert set(run_fake(tmp_path, config)[0].values()) == {"reused"}
    # a changed setting reruns its stage and what depends on it, nothing else
    changed = apply_overrides(config, ["dpo_steps=5"])
    assert run_fake(tmp_path, changed)[0] == {"demos-il": "reused", "demos-expert": "reused", "il": "ran", "demos-self": "ran"}
    assert (tmp_path / "demos-self.txt").read_text() == "demos-il=0;il=5;demos-self=1;"
    assert run_fake(tmp_path, changed)[0]["il"] == "reused"
    # --force reruns the stage and its dependants
    assert run_fake(tmp_path, changed, force=["demos-il"])[0] == {"demos-il": "ran", "demos-expert": "reused", "il": "ran", "demos-self": "ran"}
    # a missing output reruns the stage (and, since its run id changes, its dependants)
    (tmp_path / "il.txt").unlink()
    assert run_fake(tmp_path, changed)[0] == {"demos-il": "reused", "demos-expert": "reused", "il": "ran", "demos-self": "ran"}


def test_an_interrupted_stage_is_rerun_and_its_partial_output_moved_aside(tmp_path):
    run_fake(tmp_path)
    L = Layout(tmp_path)
    L.marker("il").unlink()  # what a kill mid-way leaves: no marker (it is deleted when a stage starts) ...
    (tmp_path / "il.txt").write_text("half-writ")  # ... and partial output
    assert run_fake(tmp_path)[0] == {"demos-il": "reused", "demos-expert": "reused", "il": "ran", "demos-self": "ran"}
    assert (L.stale / "il" / "il.txt").read_text() == "half-writ"
    assert (tmp_path / "il.txt").read_text() == "demos-il=0;il=2;"


def test_a_failed_stage_names_itself_its_command_and_its_log(tmp_path):
    with pytest.raises(StageFailed) as info:
        run_fake(tmp_path, fail="il")
    text = str(info.value)
    assert "stage 3/" in text and "'il'" in text and "exit code 3" in text
    assert "command: python -c" in text and "something went wrong: boom" in text and str(tmp_path / "logs" / "il.log") in text
    assert load_marker(Layout(tmp_path).marker("il")) is None and not (tmp_path / "demos-self.txt").exists()
    assert load_marker(Layout(tmp_path).marker("demos-il")) is not None  # stages before it are kept
    # once fixed, the rerun starts at the failed stage
    assert run_fake(tmp_path)[0] == {"demos-il": "reused", "demos-expert": "reused", "il": "ran", "demos-self": "ran"}


def test_only_runs_the_named_stages_when_their_inputs_are_done(tmp_path):
    with pytest.raises(PipelineError, match="'il' needs 'demos-il'"):
        run_fake(tmp_path, only=["il"])
    assert run_fake(tmp_path, only=["demos-il", "il"])[0] == {
        "demos-il": "ran", "demos-expert": "not selected", "il": "ran", "demos-self": "not selected"}
    assert run_fake(tmp_path)[0] == {"demos-il": "reused", "demos-expert": "ran", "il": "reused", "demos-self": "ran"}


def test_one_pipeline_per_output_folder(tmp_path):
    import os

    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(PipelineError, match=f"another pipeline \\(pid {os.getppid()}\\) is running"):
        run_fake(tmp_path)
    (tmp_path / ".lock").write_text("999999999")  # left by a process that is gone: taken over
    assert set(run_fake(tmp_path)[0].values()) == {"ran"}
    assert not (tmp_path / ".lock").exists()


def test_live_display_and_plan(tmp_path, capsys):
    runner = PipelineRunner(PipelineConfig.from_budget("tiny"), tmp_path, stages=fake_stages(), live=True, poll_seconds=0.05)
    assert [what for _, what in runner.plan()] == ["run (no marker)"] * 4
    runner.run()
    out = capsys.readouterr().out
    assert "budget 'tiny'" in out and "demos-self" in out and "elapsed" in out
    assert [what for _, what in runner.plan()] == ["reuse"] * 4
    assert [what for _, what in runner.plan(force={"il"})] == ["reuse", "reuse", "run (forced)", "run (upstream stage reran)"]


# --------------------------------------------------------------------------- the whole pipeline
@pytest.mark.slow
@pytest.mark.lucene
def test_pipeline_end_to_end_tiny(tiny_checkpoint, webshop_dir, tmp_path, capsys):
    out = tmp_path / "pipeline"
    base = ["pipeline", "--budget", "tiny", "--output", str(out), "--base-model", str(tiny_checkpoint), "--plain",
            "--set", "max_observation_length=96", "--set", "max_action_length=16", "--set", f"data_dir={webshop_dir}"]
    assert main(base) == 0
    printed = capsys.readouterr().out
    assert "budget 'tiny'" in printed and "[12/12] report: done" in printed and "elapsed" in printed
    L = Layout(out)
    markers = {name: load_marker(L.marker(name)) for name in STAGE_NAMES}
    assert all(markers.values()), [n for n, m in markers.items() if not m]
    assert all((L.logs / f"{name}.log").is_file() for name in STAGE_NAMES)
    report = L.report_md.read_text()
    for text in ("tiny budget", "## Stages", "## Paired comparison on the same goals", "test goals, product split",
                 "## Thompson-sampling evaluation", "P(best", "dpo-expert", "dpo-self", "ppo",
                 "## Against the paper's claims", "Judged on the headline view (product split", "preference pairs", "](thompson/"):
        assert text in report, text
    results = json.loads(L.results_json.read_text())
    assert set(results["thompson"]["summary"]["agents"]) == {"rule", "il", "dpo-expert", "dpo-self", "ppo"}
    assert results["data"]["expert_trajectories"]["trajectories"] == 4 and results["data"]["pairs_expert"]["pairs"] > 0
    assert results["data"]["self_generated"]["trajectories"] >= 1 and results["plots"]
    assert {c["a"] for c in results["comparisons"]} >= {"dpo-expert", "dpo-self"}
    # each claim's pair on each view and metric: the paired difference in points, its interval and P(better)
    entry = next(c for c in results["comparisons"] if c["pair"] == "dpo-self against il" and c["headline"] and c["metric"] == "success")
    assert entry["split"] == "test" and entry["split_mode"] == "product" and entry["goals"] == 3
    assert entry["ci"][0] <= entry["difference"] <= entry["ci"][1] and 0.0 <= entry["p_better"] <= 1.0
    assert {c["view"] for c in results["comparisons"]} == {"product", "index", "human"}
    assert set(results["comparison"]["views"][0]["rows"]) == {"rule", "il", "dpo-expert", "dpo-self", "ppo"}

    # a rerun reuses every stage
    run_ids = {name: m["run_id"] for name, m in markers.items()}
    assert main(base) == 0
    assert capsys.readouterr().out.count("reused (finished") == len(STAGE_NAMES)
    assert {name: load_marker(L.marker(name))["run_id"] for name in STAGE_NAMES} == run_ids

    # a changed setting: what would rerun (dry run), then a cheap one for real
    assert main([*base, "--set", "dpo_steps=1", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    rerun = {line.split()[1] for line in plan.splitlines() if " run (" in line}
    assert rerun == {"dpo-expert", "dpo-self", "compare", "thompson", "report"}
    # (the runner's rerun rules themselves are checked on stand-in stages above; a real rerun of
    # the cheapest stage keeps this test short)
    assert main([*base, "--force", "report"]) == 0
    capsys.readouterr()
    now = {name: load_marker(L.marker(name))["run_id"] for name in STAGE_NAMES}
    assert {name for name in STAGE_NAMES if now[name] != run_ids[name]} == {"report"}

    # a failing stage: a clear error naming it, the command and the log, exit code 2; no marker left
    assert main([*base, "--set", f"data_dir={tmp_path / 'missing'}", "--only", "demos-expert"]) == 2
    err = capsys.readouterr().err
    assert "webshop-trl pipeline: error: stage 2/12 'demos-expert'" in err and "command: python -m webshop_trl.cli.main demos expert" in err
    assert "demos-expert.log" in err and load_marker(L.marker("demos-expert")) is None
