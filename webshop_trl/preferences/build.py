"""Trajectories in, a `datasets.DatasetDict` of preference pairs out (train and eval).

One row per choice decision of the demonstrations (`webshop_trl.datasets.decision_steps`: click
steps; search steps are not choice decisions), with

============================  =================================================================
column                        meaning
============================  =================================================================
``prompt``                    the observation (page text) the demonstrator acted on
``chosen``                    the demonstration's action
``rejected``                  the action to prefer less (see `webshop_trl.preferences.rejection`)
``available_actions``         the page's candidate clicks the choice was made among (WebShop's
                              cap: the first 6 plus 10 random others past 20, chosen kept)
``chosen_index``              index of ``chosen`` in ``available_actions``
``rejected_index``            index of ``rejected`` in ``available_actions``
``goal_index``                the goal's index (-1 if the trajectory did not record it)
``step``                      position of the step in its trajectory (0 = first step)
``source``                    the trajectory's source ("expert", "human-play", "il", ...)
``reward``                    the trajectory's final reward (0..1), e.g. to keep successes only
``reference_agreed``          the reference's own choice was ``chosen`` (null for uniform)
``ref_chosen_logps``          reference rejection only: log pi_ref(chosen|s), the reference's
                              log-softmax over ``available_actions`` (float32)
``ref_rejected_logps``        reference rejection only: log pi_ref(rejected|s)
============================  =================================================================

The two ``ref_*`` columns are TRL's names for precomputed reference log-probs: a DPO run whose
reference is the same checkpoint (same weights, processor settings and precision; recorded under
``reference_log_probs`` in the build info) uses them instead of a precompute pass
(`webshop_trl.preferences.reference`, ``reference_log_probs_from_dataset``).

``prompt``/``chosen``/``rejected`` are TRL's preference columns (explicit prompt). The split is by
goal -- (goal kind, goal index), so no goal has rows in both splits -- and seeded. Everything is
deterministic given the inputs, their order and the seed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from webshop_trl.datasets import DecisionStep, decision_steps
from webshop_trl.datasets.decision_steps import MAX_CANDIDATES
from webshop_trl.errors import DataFileError, WebShopTrlError
from webshop_trl.preferences.reference import RECORD_KEY, REFERENCE_LOG_PROB_COLUMNS, reference_record
from webshop_trl.preferences.rejection import REJECTION_METHODS, ReferencePolicyRejector, UniformRejector, other_indices
from webshop_trl.trajectories.format import read_trajectories

FORMAT_ID = "webshop-trl/preferences/v1"
SPLITS = ("train", "eval")
BUILD_INFO_NAME = "build_info.json"
CARD_NAME = "README.md"

COLUMNS: dict[str, str] = {
    "prompt": "the observation (page text) the demonstrator acted on",
    "chosen": "the demonstration's action",
    "rejected": "the less preferred action (reference policy's choice, or uniform; see 'How the rejected action was chosen')",
    "available_actions": "the candidate clicks of the page the choice was made among",
    "chosen_index": "index of `chosen` in `available_actions`",
    "rejected_index": "index of `rejected` in `available_actions`",
    "goal_index": "the goal's index (-1 if the trajectory did not record it)",
    "step": "position of the step in its trajectory (0 = first step)",
    "source": "the trajectory's source (expert, human-play, il, ...)",
    "reward": "the trajectory's final reward (0 to 1)",
    "reference_agreed": "the reference policy's own choice was `chosen` (null for uniform rejection)",
}
# Only with rejection "reference": the reference's log-probs (TRL's precomputed-reference column names,
# `REFERENCE_LOG_PROB_COLUMNS`).
REFERENCE_COLUMNS: dict[str, str] = {
    "ref_chosen_logps": "log pi_ref(chosen|s) under the reference policy: its log-softmax over `available_actions`",
    "ref_rejected_logps": "log pi_ref(rejected|s) under the reference policy",
}


def features(reference_log_probs: bool = False):
    """The dataset's features; ``reference_log_probs`` adds the two float32 ``ref_*`` columns."""
    from datasets import Features, List, Value

    extra = {name: Value("float32") for name in REFERENCE_COLUMNS} if reference_log_probs else {}
    return Features({
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "available_actions": List(Value("string")),
        "chosen_index": Value("int32"),
        "rejected_index": Value("int32"),
        "goal_index": Value("int64"),
        "step": Value("int32"),
        "source": Value("string"),
        "reward": Value("float32"),
        "reference_agreed": Value("bool"),
        **extra,
    })


class PreferenceBuildError(WebShopTrlError):
    """The build cannot go on (bad option, no usable rows, unusable reference model)."""


@dataclass
class PreferenceBuildConfig:
    """Settings of a build; recorded in ``build_info.json`` and the dataset card.

    Args:
        inputs: trajectory files (JSON lines, `webshop_trl.trajectories.format`); rows follow their order.
        rejection: "reference" (a reference policy's choice, the paper's method) or "uniform".
        reference_model: folder or hub id of the reference `ActionScorerModel` (rejection="reference").
        temperature: None/0: the reference's argmax; > 0: a draw from softmax(log pi / T).
        skip_agreeing: drop rows where the reference's choice is the chosen action (instead of
            rejecting the reference's choice among the other candidates).
        eval_fraction: share of *goals* put in the eval split, in [0, 1).
        seed: seeds the split, the candidate cap and every draw.
        max_candidates: WebShop's cap on a page's candidates (None or 0: no cap).
        lenient: skip malformed trajectory lines (counted) instead of stopping at the first.
        batch_size: pages per reference forward pass.
        device: "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
        bf16: score under bfloat16 autocast.
    """

    inputs: list[str]
    rejection: str = "reference"
    reference_model: str | None = None
    temperature: float | None = None
    skip_agreeing: bool = False
    eval_fraction: float = 0.1
    seed: int = 0
    max_candidates: int | None = MAX_CANDIDATES
    lenient: bool = False
    batch_size: int = 16
    device: str = "auto"
    bf16: bool = False

    def validate(self) -> None:
        if not self.inputs:
            raise PreferenceBuildError("no input trajectory files given")
        if self.rejection not in REJECTION_METHODS:
            raise PreferenceBuildError(f"unknown rejection method {self.rejection!r}: choose one of {', '.join(REJECTION_METHODS)}")
        if self.rejection == "reference" and not self.reference_model:
            raise PreferenceBuildError("rejection 'reference' needs a reference policy checkpoint (--reference-model PATH_OR_ID); "
                                       "or choose --rejection uniform")
        if self.rejection == "uniform":
            given = [name for name, value in (("reference_model", self.reference_model), ("temperature", self.temperature),
                                              ("skip_agreeing", self.skip_agreeing or None)) if value is not None]
            if given:
                raise PreferenceBuildError(f"{', '.join(given)} only apply to rejection 'reference', not 'uniform'")
        if self.temperature is not None and (not math.isfinite(self.temperature) or self.temperature < 0):
            raise PreferenceBuildError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not (isinstance(self.eval_fraction, (int, float)) and 0 <= self.eval_fraction < 1):
            raise PreferenceBuildError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.max_candidates is not None and self.max_candidates != 0 and self.max_candidates < 2:
            raise PreferenceBuildError(f"max_candidates must be >= 2 (or 0 for no cap), got {self.max_candidates}")
        if self.batch_size < 1:
            raise PreferenceBuildError(f"batch_size must be >= 1, got {self.batch_size}")
        resolved = [str(Path(p).resolve()) for p in self.inputs]
        twice = sorted({p for p in resolved if resolved.count(p) > 1})
        if twice:
            raise PreferenceBuildError(f"input file given more than once: {', '.join(twice)}")
        for p in self.inputs:
            if not Path(p).is_file():
                raise DataFileError(f"trajectory file not found: {p}")


@dataclass
class BuiltPreferences:
    """The result of `build_preferences`: the dataset and the record of how it was made."""

    dataset: Any  # datasets.DatasetDict with splits "train" and "eval"
    info: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # one line per skipped step or line


# --------------------------------------------------------------------------- helpers
def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _derived_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def goal_key(kind: Any, index: int) -> str:
    return f"{kind or 'unknown'}:{index}"


def split_goals(keys: Sequence[str], eval_fraction: float, seed: int) -> set[str]:
    """The goals of the eval split: ``round(eval_fraction * n)`` of the n distinct goals (at least
    one and at most n - 1 when 0 < fraction and n >= 2), those ranked first by a seeded hash of
    the goal. A goal's rank does not depend on the other goals, so building again on more
    demonstrations keeps most eval goals in eval."""
    distinct = sorted(set(keys))
    n = len(distinct)
    if eval_fraction <= 0 or n < 2:
        return set()
    n_eval = min(max(round(eval_fraction * n), 1), n - 1)
    ranked = sorted(distinct, key=lambda k: (hashlib.sha256(f"{seed}:split:{k}".encode()).hexdigest(), k))
    return set(ranked[:n_eval])


def _git_state() -> dict[str, Any]:
    from webshop_trl import paths

    repo = paths.repo_dir()
    if repo is None:
        return {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip() != ""
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {}


def _versions(with_torch: bool) -> dict[str, str]:
    import datasets
    import huggingface_hub

    out = {"python": platform.python_version(), "datasets": datasets.__version__, "huggingface_hub": huggingface_hub.__version__}
    if with_torch:
        import torch
        import transformers

        out.update(torch=torch.__version__, transformers=transformers.__version__)
    return out


def rows_sha256(rows: Sequence[dict[str, Any]]) -> str:
    """A fingerprint of a split's content (order included)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- reading
@dataclass
class _Decisions:
    steps: list[DecisionStep] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


def collect_decisions(config: PreferenceBuildConfig) -> _Decisions:
    """The choice decisions of all input files, in order, each with its row key and goal key."""
    out = _Decisions()
    cap = config.max_candidates or None
    for path in config.inputs:
        sha = file_sha256(path)
        malformed: list[str] = []
        n_traj = n_steps = n_clicks = 0
        for t_index, traj in enumerate(read_trajectories(path, lenient=config.lenient, skipped=malformed)):
            n_traj += 1
            n_steps += len(traj.steps)
            n_clicks += sum(s.action.startswith("click[") for s in traj.steps)
            invalid: list[str] = []
            kind = traj.goal.get("kind")
            seed = _derived_seed(config.seed, "candidates", sha, t_index)
            for d in decision_steps([traj], seed=seed, max_candidates=cap, skipped=invalid):
                out.steps.append(d)
                out.keys.append(f"{sha[:16]}:{t_index}:{d.step}")
                out.goals.append(goal_key(kind, d.goal_index))
            out.skipped.extend(f"{path}: " + m.replace("trajectory 0 ", f"trajectory {t_index} ", 1) for m in invalid)
            out.counts["invalid_steps"] += len(invalid)
        out.skipped.extend(malformed)
        out.counts["trajectories"] += n_traj
        out.counts["steps"] += n_steps
        out.counts["not_choice_steps"] += n_steps - n_clicks
        out.counts["malformed_lines"] += len(malformed)
        out.inputs.append({"path": str(path), "sha256": sha, "bytes": Path(path).stat().st_size, "trajectories": n_traj,
                           "malformed_lines_skipped": len(malformed)})
    out.counts["decision_steps"] = len(out.steps)
    return out


# --------------------------------------------------------------------------- the reference policy
def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_reference_policy(name_or_path: str, device: str = "auto") -> Any:
    """`ActionScorerModel.from_pretrained` with its processor, in eval mode on ``device``."""
    from webshop_trl.policy import ActionScorerModel

    name = str(name_or_path)
    looks_like_path = Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or name.endswith("/")
    if looks_like_path and not Path(name).expanduser().exists():  # "owner/name" may be a hub id
        raise PreferenceBuildError(f"reference model folder not found: {name_or_path}")
    config_file = Path(name).expanduser() / "config.json"
    if config_file.is_file():
        try:
            model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type != ActionScorerModel.config_class.model_type:
            raise PreferenceBuildError(
                f"the reference policy {name_or_path!r} is a {model_type or 'unknown'} checkpoint, not an ActionScorerModel "
                f"(model_type {ActionScorerModel.config_class.model_type!r}); build one with ActionScorerModel.from_bert, "
                "train it (imitation learning) and save_pretrained it")
    try:
        model = ActionScorerModel.from_pretrained(str(Path(name).expanduser()) if looks_like_path else name)
    except Exception as exc:  # missing files, offline hub, incompatible weights: say what and where
        raise PreferenceBuildError(f"cannot load the reference policy {name_or_path!r} as an ActionScorerModel: "
                                   f"{type(exc).__name__}: {exc}") from exc
    if model.processor is None:
        raise PreferenceBuildError(f"the reference policy {name_or_path!r} has no tokenizer files beside its weights "
                                   "(save it with ActionScorerModel.save_pretrained, which writes them)")
    return model.to(resolve_device(device)).eval()


def describe_reference(model: Any, name_or_path: str | None) -> dict[str, Any]:
    """What identifies the reference checkpoint: its path or id, weights' sha256, encoder, size."""
    info: dict[str, Any] = {"name_or_path": name_or_path, "model_type": getattr(model.config, "model_type", None),
                            "encoder": getattr(model.config, "encoder_name_or_path", None),
                            "parameters": int(sum(p.numel() for p in model.parameters()))}
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        info["hub_commit"] = commit
    if name_or_path and Path(name_or_path).is_dir():
        weights = sorted(Path(name_or_path).glob("*.safetensors")) or sorted(Path(name_or_path).glob("*.bin"))
        info["weights_sha256"] = {w.name: file_sha256(w) for w in weights}
    return info


# --------------------------------------------------------------------------- the build
Progress = Callable[[str, int, int], None]  # (stage, how many more done, stage total)


def build_preferences(
    config: PreferenceBuildConfig,
    *,
    reference_model: Any = None,
    command: str | None = None,
    progress: Progress | None = None,
) -> BuiltPreferences:
    """Build the preference pairs of ``config.inputs``.

    Args:
        config: the settings (validated here).
        reference_model: an already loaded reference `ActionScorerModel` (else
            ``config.reference_model`` is loaded when rejection is "reference").
        command: the command line, recorded in the build info.
        progress: called as ``progress(stage, advanced, total)`` while scoring.

    Raises `DataFileError` for a missing or malformed input (file:line), `PreferenceBuildError`
    for bad settings or when no row can be made.
    """
    from datasets import Dataset, DatasetDict

    start = time.perf_counter()
    if reference_model is not None and config.rejection == "reference" and not config.reference_model:
        config = dataclasses.replace(config, reference_model=getattr(reference_model, "name_or_path", None) or "<in-memory model>")
    config.validate()
    decisions = collect_decisions(config)
    counts = decisions.counts
    if not decisions.steps:
        raise PreferenceBuildError(f"no choice decisions in {', '.join(config.inputs)} "
                                   f"({counts['trajectories']} trajectories, {counts['steps']} steps, {counts['invalid_steps']} unusable)")

    # pages with fewer than two distinct candidates cannot form a pair
    usable = [i for i, d in enumerate(decisions.steps) if other_indices(d)]
    counts["single_candidate"] = len(decisions.steps) - len(usable)
    steps = [decisions.steps[i] for i in usable]
    keys = [decisions.keys[i] for i in usable]
    goals = [decisions.goals[i] for i in usable]
    if not steps:
        raise PreferenceBuildError("no decision step has two or more distinct candidate actions: no pair can be made")

    if config.rejection == "uniform":
        rejector: Any = UniformRejector(config.seed)
        reference_info = None
        log_prob_record = None
    else:
        model = reference_model if reference_model is not None else load_reference_policy(config.reference_model, config.device)
        rejector = ReferencePolicyRejector(model, temperature=config.temperature, seed=config.seed,
                                           batch_size=config.batch_size, bf16=config.bf16, source=config.reference_model)
        reference_info = describe_reference(model, config.reference_model)
        log_prob_record = reference_record(model, config.reference_model, bf16=config.bf16,
                                           weights_sha256=reference_info.get("weights_sha256"),
                                           hub_commit=reference_info.get("hub_commit"))
        reference_info["weights_fingerprint"] = log_prob_record["weights_fingerprint"]
    tick = (lambda n: progress("reject", n, len(steps))) if progress is not None else None
    rejections = rejector.reject(steps, keys, tick)

    eval_goals = split_goals(goals, config.eval_fraction, config.seed)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    split_goal_sets: dict[str, set[str]] = {s: set() for s in SPLITS}
    by_source: Counter = Counter()
    agreed = 0
    for step, goal, rej in zip(steps, goals, rejections):
        if rej.agreed:
            agreed += 1
            if config.skip_agreeing:
                continue
        split = "eval" if goal in eval_goals else "train"
        split_goal_sets[split].add(goal)
        by_source[step.source] += 1
        row = {
            "prompt": step.observation,
            "chosen": step.chosen,
            "rejected": step.candidates[rej.index],
            "available_actions": list(step.candidates),
            "chosen_index": step.label,
            "rejected_index": rej.index,
            "goal_index": step.goal_index,
            "step": step.step,
            "source": step.source,
            "reward": float(step.reward),
            "reference_agreed": rej.agreed,
        }
        if log_prob_record is not None:
            row["ref_chosen_logps"] = rej.chosen_log_prob
            row["ref_rejected_logps"] = rej.rejected_log_prob
        rows[split].append(row)
    counts["reference_agreed"] = agreed if config.rejection == "reference" else 0
    counts["agreeing_skipped"] = agreed if config.skip_agreeing else 0
    if not any(rows.values()):
        raise PreferenceBuildError(f"all {len(steps)} pairs were dropped (--skip-agreeing: the reference agreed with every "
                                   "demonstrated action)")

    feats = features(reference_log_probs=log_prob_record is not None)
    dataset = DatasetDict({
        s: Dataset.from_dict({c: [r[c] for r in rows[s]] for c in feats}, features=feats, split=s) for s in SPLITS
    })
    info: dict[str, Any] = {
        "format": FORMAT_ID,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": command,
        "package": {"name": "webshop-trl", "version": _package_version(), **_git_state()},
        "versions": _versions(with_torch=config.rejection == "reference"),
        "config": dataclasses.asdict(config),
        "inputs": decisions.inputs,
        "rejection": {**rejector.describe(), **({"reference": reference_info} if reference_info else {})},
        "split": {
            "by": "goal (goal kind, goal index)",
            "eval_fraction": config.eval_fraction,
            "seed": config.seed,
            "goals": {s: len(split_goal_sets[s]) for s in SPLITS},
            "eval_goals": sorted(eval_goals, key=_goal_sort_key),
        },
        "counts": {
            **{k: int(counts[k]) for k in ("trajectories", "steps", "not_choice_steps", "invalid_steps", "malformed_lines",
                                          "decision_steps", "single_candidate", "reference_agreed", "agreeing_skipped")},
            "pairs": len(steps),
            "rows": {s: len(rows[s]) for s in SPLITS},
            "rows_by_source": dict(sorted(by_source.items())),
        },
        "reference_agreement": (agreed / len(steps)) if config.rejection == "reference" else None,
        RECORD_KEY: log_prob_record,
        "rows_sha256": {s: rows_sha256(rows[s]) for s in SPLITS},
        "columns": {**COLUMNS, **(REFERENCE_COLUMNS if log_prob_record is not None else {})},
        "skipped_examples": decisions.skipped[:20],
    }
    info["build_seconds"] = round(time.perf_counter() - start, 3)
    return BuiltPreferences(dataset=dataset, info=info, skipped=decisions.skipped)


def _goal_sort_key(key: str) -> tuple[str, int]:
    kind, _, index = key.rpartition(":")
    try:
        return kind, int(index)
    except ValueError:
        return kind, 0


def _package_version() -> str:
    from webshop_trl import __version__

    return __version__
