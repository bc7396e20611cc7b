"""Training curves as a PNG beside the checkpoint, from `Trainer`'s log history.

Why a picture and not only numbers: the failure this project had to find in IL was a plateau at
the uniform choice followed by a late drop and relapses, which a final metric hides and a curve
shows at a glance. Every trainer built on `transformers.Trainer` (IL, DPO) keeps its logs in
``trainer.state.log_history`` (and ``trainer_state.json``); this draws them, one panel per
metric family, training points as a line and evaluation points as markers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

# Panels of an IL run: (title, [(log key, label), ...]).
IL_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("loss: -log pi(a*|s)", (("loss", "train"), ("eval_loss", "held-out"))),
    ("choice accuracy", (("choice_accuracy", "train batches"), ("eval_choice_accuracy", "held-out"))),
    ("gradient norm (before clipping)", (("grad_norm", "train"),)),
    ("learning rate (encoder)", (("learning_rate", "train"),)),
)

CURVES_FILENAME = "training_curves.png"


def series(log_history: Iterable[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged key, in log order; non-finite and missing values skipped."""
    steps: list[int] = []
    values: list[float] = []
    for entry in log_history:
        value = entry.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and "step" in entry:
            steps.append(int(entry["step"]))
            values.append(float(value))
    return steps, values


def plot_training_curves(
    log_history: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    title: str = "",
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]] = IL_PANELS,
) -> Path | None:
    """Draw ``panels`` of ``log_history`` into ``path`` (PNG); returns the path, or None when no
    panel has a single point (e.g. a run of zero steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [(name, [(key, label, *series(log_history, key)) for key, label in keys]) for name, keys in panels]
    drawn = [(name, [s for s in lines if s[2]]) for name, lines in drawn]
    drawn = [(name, lines) for name, lines in drawn if lines]
    if not drawn:
        return None
    cols = 2
    rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, lines) in zip(axes.flat, drawn):
        for key, label, steps, values in lines:
            if key.startswith("eval_"):
                ax.plot(steps, values, "o-", label=label, markersize=4)
            else:
                ax.plot(steps, values, "-", label=label, linewidth=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("optimizer update")
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(drawn):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_trainer_state(run_dir: str | os.PathLike, title: str = "", panels=IL_PANELS) -> Path | None:
    """Redraw the curves of a finished run from its ``trainer_state.json``."""
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return plot_training_curves(state.get("log_history", []), run_dir / CURVES_FILENAME, title or run_dir.name, panels)


__all__ = ["CURVES_FILENAME", "IL_PANELS", "plot_trainer_state", "plot_training_curves", "series"]
