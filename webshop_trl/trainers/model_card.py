"""The model card (README.md) a training run writes into ``output_dir`` and pushes with the policy.

It records what a reader needs to trust or redo the run:

* **data** -- each dataset's path or Hub id, its size (pages / pairs / trajectories, as the method
  counts them) and, when a ``build_info.json`` lies next to it (what ``webshop-trl
  build-preferences`` writes), how it was built;
* **base checkpoint** -- the policy (or encoder) the run started from;
* **recipe** -- the hyperparameters (the arguments that differ from their defaults, plus the
  ones that define the run whatever their value);
* **results** -- the final train and evaluation metrics (PPO: the last logged update).

YAML front matter: ``library_name``, ``tags`` (webshop, webshop-trl, trl and the method),
``base_model`` (a Hub id only: a local folder's own card or config is followed to one, as the Hub
rejects paths) and ``datasets`` (Hub ids only). The file is written atomically (temporary file +
rename). `write_trainer_model_card` builds the card of a `transformers.Trainer` run from what the
entry script recorded in ``trainer.model_card_data`` (falling back to what the trainer knows).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from webshop_trl.paths import write_text_atomic

README = "README.md"
BUILD_INFO = "build_info.json"
LIBRARY_NAME = "transformers"
METHOD_TITLES = {
    "il": "imitation learning (behaviour cloning of click choices)",
    "dpo": "DPO on preference pairs (TRL's DPOTrainer)",
    "ppo": "PPO on the live WebShop environment",
}
METHOD_TAGS = {"il": ["il", "imitation-learning"], "dpo": ["dpo"], "ppo": ["ppo", "reinforcement-learning"]}
# never recorded (secrets, or noise that says nothing about the recipe)
_SKIP_KEYS = {
    "hub_token", "push_to_hub_token", "push_to_hub_model_id", "push_to_hub_organization", "logging_dir",
    "local_rank", "_n_gpu", "deepspeed_plugin", "accelerator_config", "distributed_state",
}
_SECRET_HINTS = ("token", "password", "secret")


# --------------------------------------------------------------------------- data
def is_local(name: str | os.PathLike | None) -> bool:
    return name is not None and (os.path.exists(name) or str(name).startswith((".", "/", "~")))


def find_build_info(path: str | os.PathLike) -> dict | None:
    """``build_info.json`` of a dataset: inside its folder, ``<file>.build_info.json`` or next to the file."""
    p = Path(path)
    candidates = [p / BUILD_INFO] if p.is_dir() else [p.with_name(p.name + "." + BUILD_INFO), p.parent / BUILD_INFO]
    for c in candidates:
        try:
            return json.loads(c.read_text())
        except (OSError, ValueError):
            continue
    return None


def dataset_entry(name: str | os.PathLike, **counts: Any) -> dict[str, Any]:
    """One dataset of the card: its path or Hub id, its counts, and its build_info when found."""
    entry: dict[str, Any] = {"name": str(name), "source": "local" if is_local(name) else "hub"}
    entry.update({k: v for k, v in counts.items() if v is not None})
    if entry["source"] == "local":
        info = find_build_info(name)
        if info is not None:
            entry["build_info"] = info
    return entry


def count_lines(paths: Iterable[str | os.PathLike]) -> int | None:
    """Non-empty lines of JSON-lines files (trajectories), None if one is not a readable file."""
    total = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                total += sum(1 for line in f if line.strip())
        except OSError:
            return None
    return total


# --------------------------------------------------------------------------- base model
def _front_matter(text: str) -> dict:
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def hub_base_model(name_or_path: str | os.PathLike | None, _depth: int = 0) -> str | None:
    """The Hub id the run's starting point comes from: itself when it is a Hub id; for a local
    checkpoint, the ``base_model`` of its own card, else its config's encoder (when a Hub id)."""
    if not name_or_path:
        return None
    if not is_local(name_or_path):
        return str(name_or_path)
    if _depth > 3:
        return None
    folder = Path(name_or_path)
    try:
        base = _front_matter((folder / README).read_text()).get("base_model")
    except OSError:
        base = None
    if isinstance(base, list):
        base = base[0] if base else None
    if base:
        return str(base)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    encoder = config.get("encoder_name_or_path")
    return hub_base_model(encoder, _depth + 1) if encoder else None


# --------------------------------------------------------------------------- hyperparameters
def _plain(value: Any) -> Any:
    """JSON/YAML-safe form of a config value (enums by value, other objects by str)."""
    if isinstance(value, enum.Enum):  # SchedulerType, OptimizerNames, ... (str enums too)
        return _plain(value.value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        try:
            return f.default_factory()  # type: ignore[misc]
        except Exception:
            return dataclasses.MISSING
    return dataclasses.MISSING


def recipe_values(args: Any, always: Sequence[str] = ()) -> dict[str, Any]:
    """Fields of a dataclass that differ from their defaults, plus those named in ``always``."""
    if args is None or not dataclasses.is_dataclass(args):
        return {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(args):
        name = f.name
        if name in _SKIP_KEYS or name.startswith("_") or any(h in name for h in _SECRET_HINTS) or not f.init:
            continue
        value = getattr(args, name, None)
        default = _default(f)
        try:
            differs = default is dataclasses.MISSING or _plain(value) != _plain(default)
        except Exception:
            differs = True
        empty = value is None or (isinstance(value, (str, list, tuple, dict, set)) and len(value) == 0)
        if name in always or (differs and not empty):
            out[name] = _plain(value)
    return out


# --------------------------------------------------------------------------- the card
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, ensure_ascii=False) + "`"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _table(rows: Mapping[str, Any], header: tuple[str, str] = ("key", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {_fmt(v).replace('|', '&#124;')} |")
    return "\n".join(lines)


def render_model_card(
    *,
    method: str,
    model_name: str,
    base_model: str | None = None,
    base_model_hub_id: str | None = None,
    datasets: Sequence[Mapping[str, Any]] = (),
    hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    hub_model_id: str | None = None,
    tags: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The card's text: YAML front matter, then data, base checkpoint, recipe and results sections."""
    if method not in METHOD_TITLES:
        raise ValueError(f"method must be one of {sorted(METHOD_TITLES)}, got {method!r}")
    all_tags = list(dict.fromkeys(["webshop", "webshop-trl", "trl", *METHOD_TAGS[method], *tags]))
    front: dict[str, Any] = {"library_name": LIBRARY_NAME, "tags": all_tags}
    if base_model_hub_id:
        front["base_model"] = base_model_hub_id
    hub_datasets = [d["name"] for d in datasets if d.get("source") == "hub"]
    if hub_datasets:
        front["datasets"] = hub_datasets
    parts = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    parts += [f"# {model_name}", ""]
    parts.append(
        f"A WebShop action-scoring policy (`webshop_trl.policy.ActionScorerModel`) trained with {METHOD_TITLES[method]} "
        "by the webshop-trl training scripts (WebShop: https://github.com/princeton-nlp/WebShop)."
    )
    parts.append("")
    parts.append("```python\nfrom webshop_trl.policy import ActionScorerModel\n\n"
                 f"policy = ActionScorerModel.from_pretrained({(hub_model_id or model_name)!r})\n```")
    parts += ["", "## Base checkpoint", ""]
    if base_model:
        line = f"Started from `{base_model}`"
        if base_model_hub_id and base_model_hub_id != base_model:
            line += f" (derived from the Hub model `{base_model_hub_id}`)"
        parts.append(line + ".")
    else:
        parts.append("Started from a fresh policy (random scoring head).")
    parts += ["", "## Data", ""]
    if not datasets:
        parts.append("No dataset (see the recipe).")
    for d in datasets:
        counts = {k: v for k, v in d.items() if k not in ("name", "source", "build_info", "role")}
        role = f"{d['role']}: " if d.get("role") else ""
        desc = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
        parts.append(f"- {role}`{d['name']}` ({d.get('source', 'local')}{'; ' + desc if desc else ''})")
        info = d.get("build_info")
        if info:
            parts += ["", "  How it was built (`build_info.json`):", "", "  ```json"]
            parts += ["  " + line for line in json.dumps(info, indent=2, ensure_ascii=False, default=str).splitlines()]
            parts += ["  ```", ""]
    parts += ["", "## Recipe", ""]
    for section, values in (hyperparameters or {}).items():
        if values:
            parts += [f"### {section}", "", _table(values, ("argument", "value")), ""]
    parts += ["## Results", ""]
    shown = False
    for section, values in (metrics or {}).items():
        if values:
            parts += [f"### {section}", "", _table({k: _plain(v) for k, v in values.items()}, ("metric", "value")), ""]
            shown = True
    if not shown:
        parts += ["No metrics recorded.", ""]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts).rstrip() + "\n"


def write_model_card(output_dir: str | os.PathLike, text: str) -> Path:
    """Write ``output_dir/README.md`` atomically; returns its path."""
    return write_text_atomic(Path(output_dir) / README, text)


def final_metrics_from_history(log_history: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Train and eval metrics of a Trainer's log history: the ``train_*`` summary and the last eval."""
    out: dict[str, dict[str, Any]] = {}
    for entry in log_history:
        if "train_runtime" in entry or "train_loss" in entry:
            out["train"] = dict(entry)
        elif any(k.startswith("eval_") for k in entry):
            out["eval"] = dict(entry)
    return out


TRAINING_ALWAYS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs",
    "seed", "lr_scheduler_type", "weight_decay", "optim", "bf16", "beta", "loss_type",
)


def write_trainer_model_card(trainer, method: str, model_name: str | None = None) -> Path | None:
    """The card of a Trainer run (IL, DPO) in ``trainer.args.output_dir``; the main process writes it.

    ``trainer.model_card_data`` (set by the entry scripts) may hold ``datasets``, ``base_model``,
    ``hyperparameters`` and ``metrics``; what is missing comes from the trainer (its training
    dataset's size, its arguments, its log history)."""
    if not trainer.is_world_process_zero():
        return None
    args = trainer.args
    data = dict(getattr(trainer, "model_card_data", None) or {})
    if model_name is None:
        model_name = args.hub_model_id.split("/")[-1] if args.hub_model_id else Path(args.output_dir).name
    datasets = data.get("datasets")
    if datasets is None:
        train = trainer.train_dataset
        datasets = [{"name": "training dataset (in memory)", "source": "memory",
                     "rows": len(train) if hasattr(train, "__len__") else None}]
    hyperparameters = data.get("hyperparameters")
    if hyperparameters is None:
        hyperparameters = {"training": recipe_values(args, TRAINING_ALWAYS)}
    hyperparameters = {k: dict(v) for k, v in hyperparameters.items()}
    hyperparameters.setdefault("training", {})["processes"] = args.world_size
    metrics = data.get("metrics") or final_metrics_from_history(trainer.state.log_history)
    base = data.get("base_model")
    if base is None:
        config = getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None)
        base = getattr(config, "_name_or_path", None) or None
    text = render_model_card(
        method=method, model_name=model_name, base_model=base, base_model_hub_id=hub_base_model(base),
        datasets=datasets, hyperparameters=hyperparameters, metrics=metrics,
        hub_model_id=args.hub_model_id, tags=data.get("tags", ()), notes=data.get("notes", ()),
    )
    return write_model_card(args.output_dir, text)


__all__ = [
    "count_lines",
    "dataset_entry",
    "final_metrics_from_history",
    "find_build_info",
    "hub_base_model",
    "recipe_values",
    "render_model_card",
    "write_model_card",
    "write_trainer_model_card",
]
