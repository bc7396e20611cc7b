"""The pipeline's stages: what each one runs (a command of the existing CLIs and scripts), what it
needs, what it writes and what its outputs hold.

Each stage is a subprocess, ``sys.executable -m ...``: the same commands a person would type
(``webshop-trl demos expert``, ``python -m webshop_trl.scripts.dpo --config ...``), with the
budget's sizes as command-line overrides of the recipes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from webshop_trl import paths
from webshop_trl.pipeline.config import PipelineConfig

CLI = ("-m", "webshop_trl.cli.main")


@dataclass(frozen=True)
class Layout:
    """Where everything lives under the pipeline's output folder."""

    root: Path

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def stale(self) -> Path:
        return self.root / "stale"

    def marker(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    def log(self, stage: str) -> Path:
        return self.logs / f"{stage}.log"

    demos_il = property(lambda self: self.root / "demos" / "expert-train-noise-off.jsonl")
    demos_expert = property(lambda self: self.root / "demos" / "expert-a.jsonl")
    demos_self = property(lambda self: self.root / "demos" / "self.jsonl")
    demos_self_summary = property(lambda self: self.root / "demos" / "self.summary.json")
    il = property(lambda self: self.root / "il")
    prefs_expert = property(lambda self: self.root / "preferences" / "expert")
    prefs_self = property(lambda self: self.root / "preferences" / "self")
    dpo_expert = property(lambda self: self.root / "dpo-expert")
    dpo_self = property(lambda self: self.root / "dpo-self")
    ppo = property(lambda self: self.root / "ppo")
    compare = property(lambda self: self.root / "compare")
    thompson = property(lambda self: self.root / "thompson")
    report_md = property(lambda self: self.root / "report.md")
    results_json = property(lambda self: self.root / "results.json")
    config_json = property(lambda self: self.root / "pipeline.json")


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    deps: tuple[str, ...]
    fields: tuple[str, ...]  # the PipelineConfig fields the stage's output depends on
    command: Callable[[PipelineConfig, Layout], list[str]]
    outputs: Callable[[Layout], list[Path]]  # everything the stage writes (moved aside before a rerun)
    required: Callable[[Layout], list[Path]] | None = None  # what must exist for the stage to count as done (default: outputs)
    summarize: Callable[[Layout], dict[str, Any]] | None = None  # figures for the marker and the report
    check: Callable[[Layout, dict[str, Any]], str | None] | None = None  # an error message when the output is unusable
    recipe_field: str | None = None  # the recipe file whose content is part of the parameters
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self, config: PipelineConfig) -> dict[str, Any]:
        return {name: getattr(config, name) for name in self.fields}

    def done_paths(self, layout: Layout) -> list[Path]:
        return (self.required or self.outputs)(layout)


# ---------------------------------------------------------------------------- helpers
def repo_root() -> Path:
    return paths.repo_dir() or Path.cwd()


def recipe_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else repo_root() / path


def read_recipe(name: str) -> dict[str, Any]:
    with open(recipe_path(name), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def is_policy_checkpoint(name: str) -> bool:
    """A saved ActionScorerModel folder (IL then continues from it instead of a bare encoder)."""
    return (Path(name) / "action_scoring_processor.json").is_file()


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _env_args(c: PipelineConfig, *, step_limit: bool = True) -> list[str]:
    out = ["--engine", c.engine]
    if step_limit:
        out += ["--step-limit", str(c.step_limit)]
    if c.data_dir:
        out += ["--data-dir", str(c.data_dir)]
    return out


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _trainer_common(c: PipelineConfig) -> list[str]:
    out = ["--disable_tqdm", "false"]
    if c.device == "cuda":
        out += ["--use_cpu", "false"]
    if c.bf16 is not None:
        out += ["--bf16", _bool(c.bf16)]
    return out


def _lengths(c: PipelineConfig) -> list[str]:
    out = []
    if c.max_observation_length is not None:
        out += ["--max_observation_length", str(c.max_observation_length)]
    if c.max_action_length is not None:
        out += ["--max_action_length", str(c.max_action_length)]
    return out


def _batch(recipe: dict[str, Any]) -> int:
    return int(recipe.get("per_device_train_batch_size", 8)) * int(recipe.get("gradient_accumulation_steps", 1))


# ---------------------------------------------------------------------------- summaries
def count_trajectories(path: Path) -> dict[str, Any]:
    """Trajectories in a JSONL file, how many reached reward 1, and their mean length."""
    n = ok = steps = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            n += 1
            ok += float(record.get("final_reward") or 0.0) >= 1.0 - 1e-9
            steps += len(record.get("steps") or [])
    return {"trajectories": n, "reward_1": ok, "mean_steps": round(steps / n, 2) if n else None}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _pick(d: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if d and k in d}


def _prefs_summary(folder: Path) -> dict[str, Any]:
    info = _read_json(folder / "build_info.json") or {}
    counts = info.get("counts", {})
    rows = counts.get("rows", {})
    return {
        "trajectories": counts.get("trajectories"), "decision_steps": counts.get("decision_steps"),
        "pairs": counts.get("pairs"), "train_pairs": rows.get("train"), "eval_pairs": rows.get("eval"),
        "reference_agreement": info.get("reference_agreement"),
    }


def _trainer_summary(folder: Path) -> dict[str, Any]:
    train = _read_json(folder / "train_results.json")
    evaluation = _read_json(folder / "eval_results.json")
    out = _pick(train, "train_runtime", "train_samples", "train_loss")
    out.update({k: v for k, v in (evaluation or {}).items() if k.startswith("eval_") and not k.endswith(("_per_second", "runtime"))})
    state = _read_json(folder / "trainer_state.json")
    if state:
        out["global_step"] = state.get("global_step")
    return out


def _ppo_summary(folder: Path) -> dict[str, Any]:
    lines = []
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        lines = [json.loads(x) for x in metrics.read_text(encoding="utf-8").splitlines() if x.strip()]
    if not lines:
        return {}
    last = lines[-1]
    keys = ("update", "env_steps", "policy_loss", "value_loss", "il_loss", "kl_ref")
    out = {k: last[k] for k in keys if k in last}
    out["updates_logged"] = len(lines)
    # episodes finished during training, over all logged updates (an update may finish none)
    episodes = [(x.get("episodes_this_update") or 0, x.get("episode_reward"), x.get("success_rate")) for x in lines]
    n = sum(e for e, r, s in episodes if r is not None)
    out["episodes"] = n
    out["episode_reward"] = sum(e * r for e, r, s in episodes if r is not None) / n if n else None
    n_s = sum(e for e, r, s in episodes if s is not None)
    out["success_rate"] = sum(e * s for e, r, s in episodes if s is not None) / n_s if n_s else None
    return out


def _thompson_summary(folder: Path) -> dict[str, Any]:
    summary = (_read_json(folder / "report.json") or {}).get("summary") or {}
    agents = summary.get("agents") or {}
    return {
        "best": summary.get("best"),
        "success_mean": {name: round(e["success"]["mean"], 4) for name, e in agents.items() if "success" in e},
        "pulls": {name: e.get("pulls") for name, e in agents.items()},
    }


def _self_check(layout: Layout, summary: dict[str, Any]) -> str | None:
    if not summary.get("trajectories"):
        return ("the IL policy kept no self-generated trajectory (none reached self_threshold within self_max_episodes); "
                "train IL longer (il_steps) or allow more episodes (--set self_max_episodes=N)")
    return None


def _pairs_check(layout: Layout, summary: dict[str, Any]) -> str | None:
    if not summary.get("train_pairs"):
        return "the preference dataset has no training pairs (too few or too short trajectories)"
    return None


# ---------------------------------------------------------------------------- commands
def cmd_demos_il(c: PipelineConfig, L: Layout) -> list[str]:
    cmd = _python(*CLI, "demos", "expert", "--split", "train", "--split-mode", c.split_mode, "--noise", "off", "--seed", str(c.seed),
                  "--output", str(L.demos_il), "--overwrite", "--quiet", *_env_args(c))
    if c.il_demo_goals is not None:
        cmd += ["--num-goals", str(c.il_demo_goals)]
    return cmd


def cmd_demos_expert(c: PipelineConfig, L: Layout) -> list[str]:
    return _python(*CLI, "demos", "expert", "--split", "train", "--split-mode", c.split_mode, "--noise", c.expert_noise, "--seed", str(c.seed),
                   "--num-goals", str(c.expert_trajectories), "--output", str(L.demos_expert), "--overwrite", "--quiet",
                   *_env_args(c))


def cmd_il(c: PipelineConfig, L: Layout) -> list[str]:
    recipe = read_recipe(c.il_recipe)
    cmd = _python("-m", "webshop_trl.scripts.il", "--config", str(recipe_path(c.il_recipe)),
                  "--dataset_paths", str(L.demos_il), "--output_dir", str(L.il))
    if is_policy_checkpoint(c.base_model):
        cmd += ["--model_name_or_path", str(c.base_model)]
    else:
        cmd += ["--encoder_name_or_path", str(c.base_model)]
    if c.il_steps is not None:
        cmd += ["--max_steps", str(c.il_steps), "--max_train_samples", str(c.il_steps * _batch(recipe)),
                "--eval_strategy", "no", "--save_strategy", "no"]
    if c.il_eval_samples is not None:
        cmd += ["--max_eval_samples", str(c.il_eval_samples)]
    return cmd + _lengths(c) + _trainer_common(c)


# Flags that change only what a command prints, not what it makes: left out of the stage's hash, so
# that adding one does not rerun finished stages.
DISPLAY_ONLY_FLAGS = ("--progress-lines",)


def cmd_demos_self(c: PipelineConfig, L: Layout) -> list[str]:
    cmd = _python(*CLI, "demos", "self", "--checkpoint", str(L.il), "--temperature", f"{c.self_temperature:g}",
                  "--num-keep", str(c.self_trajectories), "--threshold", f"{c.self_threshold:g}", "--split", "train",
                  "--split-mode", c.split_mode,
                  "--seed", str(c.seed), "--output", str(L.demos_self), "--summary-json", str(L.demos_self_summary),
                  "--overwrite", "--quiet", "--progress-lines", "--device", c.device, *_env_args(c))
    if c.self_max_episodes is not None:
        cmd += ["--max-episodes", str(c.self_max_episodes)]
    return cmd


def _cmd_prefs(demos: Callable[[Layout], Path], out: Callable[[Layout], Path]):
    def build(c: PipelineConfig, L: Layout) -> list[str]:
        cmd = _python(*CLI, "build-preferences", str(demos(L)), "--reference-model", str(L.il), "--output", str(out(L)),
                      "--seed", str(c.seed), "--device", c.device, "--quiet")
        if c.bf16 is not False:  # the DPO recipe trains under bf16; score the reference the same way
            cmd.append("--bf16")
        return cmd
    return build


def _cmd_dpo(prefs: Callable[[Layout], Path], out: Callable[[Layout], Path]):
    def build(c: PipelineConfig, L: Layout) -> list[str]:
        recipe = read_recipe(c.dpo_recipe)
        cmd = _python("-m", "webshop_trl.scripts.dpo", "--config", str(recipe_path(c.dpo_recipe)),
                      "--model_name_or_path", str(L.il), "--dataset_name", str(prefs(L)), "--output_dir", str(out(L)))
        if c.dpo_steps is not None:
            cmd += ["--max_steps", str(c.dpo_steps), "--max_train_samples", str(c.dpo_steps * _batch(recipe)),
                    "--eval_strategy", "no", "--save_strategy", "no"]
        if c.dpo_eval_samples is not None:
            cmd += ["--max_eval_samples", str(c.dpo_eval_samples)]
        if c.dpo_freeze_encoder_layers is not None:
            cmd += ["--freeze_encoder_layers", str(c.dpo_freeze_encoder_layers)]
        if c.dpo_sft_weight > 0:  # RPO: the recipe's loss types plus the chosen action's NLL
            types = recipe.get("loss_type") or ["sigmoid"]
            types = [types] if isinstance(types, str) else list(types)
            weights = list(recipe.get("loss_weights") or [1.0] * len(types))
            cmd += ["--loss_type", *types, "sft", "--loss_weights", *map(str, weights), str(c.dpo_sft_weight)]
        return cmd + _trainer_common(c)
    return build


def cmd_ppo(c: PipelineConfig, L: Layout) -> list[str]:
    cmd = _python("-m", "webshop_trl.scripts.ppo", "--config", str(recipe_path(c.ppo_recipe)),
                  "--model_name_or_path", str(L.il), "--output_dir", str(L.ppo), "--il_dataset_paths", str(L.demos_il),
                  "--search_engine", c.engine, "--step_limit", str(c.step_limit), "--goal_split_mode", c.split_mode)
    if c.ppo_updates is not None:
        cmd += ["--num_updates", str(c.ppo_updates), "--save_steps", "0"]
    if c.ppo_num_envs is not None:
        cmd += ["--num_envs", str(c.ppo_num_envs)]
    if c.ppo_num_steps is not None:
        cmd += ["--num_steps", str(c.ppo_num_steps)]
    if c.ppo_il_samples is not None:
        cmd += ["--il_max_samples", str(c.ppo_il_samples)]
    if c.data_dir:
        cmd += ["--data_dir", str(c.data_dir)]
    cmd += _lengths(c)
    if c.device == "cuda":
        cmd += ["--use_cpu", "false"]
    if c.bf16 is not None:
        cmd += ["--bf16", _bool(c.bf16)]
    return cmd


AGENTS = (("il", "il"), ("dpo-expert", "dpo_expert"), ("dpo-self", "dpo_self"), ("ppo", "ppo"))


def cmd_thompson(c: PipelineConfig, L: Layout) -> list[str]:
    cmd = _python(*CLI, "thompson", "--agent", "rule")
    for name, attr in AGENTS:
        cmd += ["--agent", f"{name}=policy:{getattr(L, attr)}"]
    cmd += ["--runs", str(c.thompson_runs), "--rollouts", str(c.thompson_rollouts),
            "--per-round", str(c.thompson_rollouts_per_round), "--split", c.thompson_split, "--split-mode", c.split_mode,
            "--seed", str(c.seed), "--output", str(L.thompson), "--no-progress", "--progress-lines", *_env_args(c)]
    if c.thompson_workers is not None:
        cmd += ["--workers", str(c.thompson_workers)]
    return cmd


def cmd_compare(c: PipelineConfig, L: Layout) -> list[str]:
    """Every trained agent and the rule agent, greedy, on the same test goals: the pipeline's split
    mode first (the headline), the other one and the human-written goals beside it."""
    cmd = _python(*CLI, "compare", "--agent", "rule")
    for name, attr in AGENTS:
        cmd += ["--agent", f"{name}=policy:{getattr(L, attr)}"]
    cmd += ["--split", "test", "--split-mode", c.split_mode]
    if c.compare_index:
        cmd += ["--split-mode", "index" if c.split_mode == "product" else "product"]
    if c.compare_human:
        cmd.append("--human")
    if c.compare_goals is not None:
        cmd += ["--max-goals", str(c.compare_goals)]
    return cmd + ["--seed", str(c.seed), "--output", str(L.compare), "--no-progress", *_env_args(c)]


def _compare_summary(folder: Path) -> dict[str, Any]:
    data = _read_json(folder / "comparison.json") or {}
    out: dict[str, Any] = {}
    for view in data.get("views", []):
        rows = view.get("rows", {})
        out[view["name"]] = {"goals": view.get("num_goals"),
                             "success": {n: round(r["success"]["value"], 2) for n, r in rows.items()},
                             "score": {n: round(r["score"]["value"], 2) for n, r in rows.items()}}
    return out


def cmd_report(c: PipelineConfig, L: Layout) -> list[str]:
    return _python("-m", "webshop_trl.pipeline.report", str(L.root))


# ---------------------------------------------------------------------------- the stages, in order
ENV = ("data_dir", "engine", "step_limit", "split_mode")

STAGES: tuple[Stage, ...] = (
    Stage("demos-il", "expert demos, noise off (IL data)", (), ("seed", "il_demo_goals", *ENV), cmd_demos_il,
          lambda L: [L.demos_il], summarize=lambda L: count_trajectories(L.demos_il)),
    Stage("demos-expert", "expert demos (DPO a)", (), ("seed", "expert_trajectories", "expert_noise", *ENV), cmd_demos_expert,
          lambda L: [L.demos_expert], summarize=lambda L: count_trajectories(L.demos_expert)),
    Stage("il", "imitation learning", ("demos-il",),
          ("base_model", "il_recipe", "il_steps", "il_eval_samples", "max_observation_length", "max_action_length", "device", "bf16"),
          cmd_il, lambda L: [L.il], required=lambda L: [L.il / "config.json"], summarize=lambda L: _trainer_summary(L.il),
          recipe_field="il_recipe"),
    Stage("demos-self", "self-generated trajectories (DPO b)", ("il",),
          ("seed", "self_trajectories", "self_max_episodes", "self_temperature", "self_threshold", "device", *ENV),
          cmd_demos_self,
          lambda L: [L.demos_self, L.demos_self.with_name(L.demos_self.stem + ".attempts.jsonl"), L.demos_self_summary],
          required=lambda L: [L.demos_self, L.demos_self_summary],
          summarize=lambda L: {**count_trajectories(L.demos_self),
                               **_pick(_read_json(L.demos_self_summary), "tried", "kept", "acceptance_rate", "stopped")},
          check=_self_check),
    Stage("prefs-expert", "preference pairs from the expert demos", ("demos-expert", "il"), ("seed", "device", "bf16"),
          _cmd_prefs(lambda L: L.demos_expert, lambda L: L.prefs_expert), lambda L: [L.prefs_expert],
          required=lambda L: [L.prefs_expert / "build_info.json"], summarize=lambda L: _prefs_summary(L.prefs_expert),
          check=_pairs_check),
    Stage("prefs-self", "preference pairs from the self-generated trajectories", ("demos-self", "il"), ("seed", "device", "bf16"),
          _cmd_prefs(lambda L: L.demos_self, lambda L: L.prefs_self), lambda L: [L.prefs_self],
          required=lambda L: [L.prefs_self / "build_info.json"], summarize=lambda L: _prefs_summary(L.prefs_self),
          check=_pairs_check),
    Stage("dpo-expert", "DPO (a): expert pairs", ("prefs-expert", "il"),
          ("dpo_recipe", "dpo_steps", "dpo_eval_samples", "dpo_freeze_encoder_layers", "dpo_sft_weight", "device", "bf16"),
          _cmd_dpo(lambda L: L.prefs_expert, lambda L: L.dpo_expert), lambda L: [L.dpo_expert],
          required=lambda L: [L.dpo_expert / "config.json"], summarize=lambda L: _trainer_summary(L.dpo_expert),
          recipe_field="dpo_recipe"),
    Stage("dpo-self", "DPO (b): self-generated pairs", ("prefs-self", "il"),
          ("dpo_recipe", "dpo_steps", "dpo_eval_samples", "dpo_freeze_encoder_layers", "dpo_sft_weight", "device", "bf16"),
          _cmd_dpo(lambda L: L.prefs_self, lambda L: L.dpo_self), lambda L: [L.dpo_self],
          required=lambda L: [L.dpo_self / "config.json"], summarize=lambda L: _trainer_summary(L.dpo_self),
          recipe_field="dpo_recipe"),
    Stage("ppo", "PPO", ("il", "demos-il"),
          ("ppo_recipe", "ppo_updates", "ppo_num_envs", "ppo_num_steps", "ppo_il_samples", "max_observation_length",
           "max_action_length", "device", "bf16", *ENV),
          cmd_ppo, lambda L: [L.ppo], required=lambda L: [L.ppo / "config.json"], summarize=lambda L: _ppo_summary(L.ppo),
          recipe_field="ppo_recipe"),
    Stage("compare", "paired comparison of rule, IL, DPO a/b, PPO on the same test goals", ("il", "dpo-expert", "dpo-self", "ppo"),
          ("seed", "compare_goals", "compare_index", "compare_human", *ENV),
          cmd_compare, lambda L: [L.compare], required=lambda L: [L.compare / "comparison.json"],
          summarize=lambda L: _compare_summary(L.compare)),
    Stage("thompson", "Thompson sampling: rule, IL, DPO a/b, PPO", ("il", "dpo-expert", "dpo-self", "ppo"),
          ("seed", "thompson_runs", "thompson_rollouts", "thompson_rollouts_per_round", "thompson_split", "thompson_workers",
           *ENV),
          cmd_thompson, lambda L: [L.thompson], required=lambda L: [L.thompson / "report.json"],
          summarize=lambda L: _thompson_summary(L.thompson)),
    Stage("report", "report", ("demos-il", "demos-expert", "il", "demos-self", "prefs-expert", "prefs-self", "dpo-expert",
                               "dpo-self", "ppo", "compare", "thompson"),
          (), cmd_report, lambda L: [L.report_md, L.results_json]),
)

STAGE_NAMES = tuple(s.name for s in STAGES)
BY_NAME = {s.name: s for s in STAGES}


def dependants(names: set[str]) -> set[str]:
    """``names`` and every stage downstream of them."""
    out = set(names)
    for stage in STAGES:  # in order: a stage's deps come before it
        if out.intersection(stage.deps):
            out.add(stage.name)
    return out
