"""Plots of evaluation results (PNG, matplotlib's Agg backend), in the spirit of Feng & Feng's
figures 3-6.

    from webshop_trl.evaluation.plots import plot_thompson, plot_eval_results
    plot_thompson(ThompsonReport.load("outputs/thompson/x/report.json"), "outputs/thompson/x")
    plot_eval_results({"rule": rule_result.summary(), "il": il_result.summary()}, "outputs/eval/bars.png")

`plot_thompson` writes:

* ``score_success_by_agent.png``: score and success rate per agent, bars at the pooled posterior
  mean with the credible interval as error bars, each run's posterior mean as a point;
* ``posterior_success.png`` / ``posterior_score.png``: each agent's posterior mean over the
  rollouts of a run with its credible band, one panel per run;
* ``pulls.png``: each agent's cumulative pulls over the rollouts, one panel per run;
* ``p_best.png``: P(agent is best) pooled (bars) and per run (points).

An agent that was never pulled is labelled "(no pulls)": its bars show only its prior.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from webshop_trl.evaluation.thompson import ThompsonReport

MAX_CURVE_POINTS = 300  # rounds drawn per curve (evenly thinned; the last round always kept)
MAX_PANEL_COLUMNS = 4


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _panels(num: int, width: float = 4.2, height: float = 3.2):
    plt = _pyplot()
    cols = min(num, MAX_PANEL_COLUMNS)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=True, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[num:]:
        ax.set_visible(False)
    return fig, flat[:num]


def _thin(n: int) -> np.ndarray:
    if n <= MAX_CURVE_POINTS:
        return np.arange(n)
    idx = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int))
    return idx


def _with_prior(report: "ThompsonReport", run: dict[str, Any], *keys: str) -> tuple[np.ndarray, ...]:
    """x (rollouts done) and the history arrays of ``keys``, thinned, starting at the prior (x = 0)."""
    h = run["history"]
    idx = _thin(len(h["rollouts"]))
    arms = len(report.agents)
    start = {"pulls": 0.0, "success_alpha": report.config.prior_alpha, "score_alpha": report.config.prior_alpha,
             "success_beta": report.config.prior_beta, "score_beta": report.config.prior_beta}
    x = np.concatenate([[0], np.asarray(h["rollouts"])[idx]])
    arrays = [np.vstack([np.full((1, arms), start[k]), np.asarray(h[k], float).reshape(-1, arms)[idx]]) for k in keys]
    return (x, *arrays)


def plot_thompson(report: "ThompsonReport", out_dir: str | os.PathLike) -> list[Path]:
    """Write the PNGs listed in the module docstring into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _plot_by_agent(report, out / "score_success_by_agent.png"),
        _plot_posterior(report, "success", out / "posterior_success.png"),
        _plot_posterior(report, "score", out / "posterior_score.png"),
        _plot_pulls(report, out / "pulls.png"),
        _plot_p_best(report, out / "p_best.png"),
    ]


def _agent_labels(report: "ThompsonReport") -> list[str]:
    """Agent names for the x axis; an agent never pulled says so (its bars are only its prior)."""
    no_pulls = set(report.summary().get("no_pulls", []))
    return [f"{n}\n(no pulls)" if n in no_pulls else n for n in report.names]


def _plot_by_agent(report: "ThompsonReport", path: Path) -> Path:
    plt = _pyplot()
    summary = report.summary()
    names = report.names
    colors = _colors(len(names))
    level = f"{100 * report.config.credible_level:g}%"
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(names) + 3) * 2 / 1.4, 4.0), layout="constrained")
    x = np.arange(len(names))
    for ax, metric, title in zip(axes, ("score", "success"), ("score (100 x mean reward)", "success rate (%)")):
        means = np.array([100 * summary["agents"][n][metric]["mean"] for n in names])
        lo = np.array([100 * summary["agents"][n][metric]["ci"][0] for n in names])
        hi = np.array([100 * summary["agents"][n][metric]["ci"][1] for n in names])
        ax.bar(x, means, color=colors, alpha=0.75, yerr=[means - lo, hi - means], capsize=5, label=f"pooled posterior mean, {level} CI")
        rng = np.random.default_rng(0)  # jitter of the run points only
        for j, name in enumerate(names):
            values = 100 * np.asarray(summary["agents"][name][metric]["runs"]["values"])
            jitter = rng.uniform(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(len(values))
            ax.scatter(x[j] + jitter, values, color="black", s=14, zorder=3, label="run posterior mean" if j == 0 else None)
        ax.set_xticks(x, _agent_labels(report), rotation=20 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_title(title)
        ax.set_ylim(0, max(5.0, float(hi.max()) * 1.15 if len(hi) else 100.0))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    cfg = report.config
    fig.suptitle(f"Thompson sampling on {cfg.split}: {cfg.num_runs} runs x {cfg.rollouts_per_run} rollouts")
    return _save(fig, path)


def _plot_posterior(report: "ThompsonReport", metric: str, path: Path) -> Path:
    from webshop_trl.evaluation.thompson import beta_interval

    names = report.names
    colors = _colors(len(names))
    level = report.config.credible_level
    fig, axes = _panels(len(report.runs))
    for ax, run in zip(axes, report.runs):
        x, alpha, beta = _with_prior(report, run, f"{metric}_alpha", f"{metric}_beta")
        lo, hi = beta_interval(alpha, beta, level)
        mean = alpha / (alpha + beta)
        for j, name in enumerate(names):
            ax.plot(x, 100 * mean[:, j], color=colors[j], label=name, lw=1.4)
            ax.fill_between(x, 100 * lo[:, j], 100 * hi[:, j], color=colors[j], alpha=0.18, lw=0)
        ax.set_title(f"run {run['run_index']}")
        ax.set_xlabel("rollouts")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(("success rate (%)" if metric == "success" else "score") + f", posterior mean and {100 * level:g}% band")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"posterior of {'success' if metric == 'success' else 'score'} over rollouts")
    return _save(fig, path)


def _plot_pulls(report: "ThompsonReport", path: Path) -> Path:
    names = report.names
    colors = _colors(len(names))
    fig, axes = _panels(len(report.runs))
    for ax, run in zip(axes, report.runs):
        x, pulls = _with_prior(report, run, "pulls")
        for j, name in enumerate(names):
            ax.plot(x, pulls[:, j], color=colors[j], label=name, lw=1.4)
        ax.set_title(f"run {run['run_index']}")
        ax.set_xlabel("rollouts")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pulls")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"pulls per agent over rollouts (arms picked by {report.config.objective})")
    return _save(fig, path)


def _plot_p_best(report: "ThompsonReport", path: Path) -> Path:
    plt = _pyplot()
    summary = report.summary()
    names = report.names
    metric = report.config.objective
    colors = _colors(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names) + 2), 3.6), layout="constrained")
    x = np.arange(len(names))
    pooled = [summary["agents"][n][metric]["p_best"] for n in names]
    ax.bar(x, pooled, color=colors, alpha=0.75, label="pooled posterior")
    for j, name in enumerate(names):
        per_run = summary["agents"][name][metric]["p_best_per_run"]
        ax.scatter([x[j]] * len(per_run), per_run, color="black", s=14, zorder=3, label="per run" if j == 0 else None)
    ax.set_xticks(x, _agent_labels(report))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"P(best {metric})")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_eval_results(results: dict[str, dict[str, Any]], out_path: str | os.PathLike) -> Path:
    """Bar chart of score and success rate per agent from `EvalResult.summary()` dicts
    (``{label: summary}``); written to ``out_path``."""
    if not results:
        raise ValueError("plot_eval_results needs at least one result")
    plt = _pyplot()
    names: Sequence[str] = list(results)
    for name in names:
        missing = [k for k in ("score", "success_rate") if k not in results[name]]
        if missing:
            raise ValueError(f"result {name!r} has no {', '.join(missing)} (pass EvalResult.summary() dicts)")
    colors = _colors(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.2 * len(names) + 3) * 2 / 1.4, 3.8), layout="constrained")
    x = np.arange(len(names))
    for ax, key, title in zip(axes, ("score", "success_rate"), ("score", "success rate (%)")):
        values = [float(results[n][key]) for n in names]
        bars = ax.bar(x, values, color=colors, alpha=0.8)
        for bar, value in zip(bars, values):
            ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_title(title)
        ax.set_ylim(0, max(5.0, max(values) * 1.15))
        ax.grid(axis="y", alpha=0.3)
    episodes = {results[n].get("episodes") for n in names}
    split = {results[n].get("split") for n in names}
    if len(episodes) == 1 and len(split) == 1:
        fig.suptitle(f"{split.pop()} split, {episodes.pop()} episodes per agent")
    return _save(fig, Path(out_path))


__all__ = ["plot_thompson", "plot_eval_results"]
