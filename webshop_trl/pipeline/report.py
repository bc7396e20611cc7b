"""The pipeline's report: ``<output>/report.md`` and ``<output>/results.json`` from the stage
markers and the Thompson-sampling report.

    python -m webshop_trl.pipeline.report outputs/pipeline

The report states the budget, each stage's wall time against its expected minutes, the data sizes
(trajectories, self-generation acceptance, preference pairs), the Thompson table (posterior means
with credible intervals, pulls, P(best)), the plots, and compares the agents the way the paper's
claims are put (IL vs DPO vs PPO; DPO on self-generated vs expert trajectories). The wording
follows the numbers: P(A > B) from the success posteriors decides between "ahead", "behind" and
"not separated"; nothing is concluded in advance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from webshop_trl.pipeline.stages import STAGES, Layout
from webshop_trl.progress import fmt_seconds

CLEAR = 0.95  # P(A > B) above this (or below 1 - this) counts as a clear difference
SAMPLES = 200_000

PAPER_CLAIMS = (
    # (A, B, what the paper says about A vs B, kind): "better" = A above B; "similar" = about equal
    ("dpo-expert", "il", "DPO improves on the IL policy it starts from", "better"),
    ("dpo-expert", "ppo", "DPO beats PPO (with far less training)", "better"),
    ("dpo-self", "il", "DPO on self-generated trajectories improves on IL", "better"),
    ("dpo-self", "dpo-expert", "DPO on 100 self-generated reward-1 trajectories is about as good as DPO on 1,200 human "
                               "trajectories (here: scripted-expert trajectories stand in for the human ones)", "similar"),
    ("ppo", "il", "PPO vs the IL policy it starts from (context for the DPO-vs-PPO claim)", "context"),
)
LABELS = {"rule": "rule agent", "il": "IL", "dpo-expert": "DPO (a) expert", "dpo-self": "DPO (b) self-generated", "ppo": "PPO"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else fmt_seconds(seconds)


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def prob_greater(a1: float, b1: float, a2: float, b2: float, seed: int = 0, samples: int = SAMPLES) -> float:
    """P(X > Y) for X ~ Beta(a1, b1), Y ~ Beta(a2, b2), by Monte Carlo (deterministic given seed)."""
    rng = np.random.default_rng(seed)
    return float(np.mean(rng.beta(a1, b1, samples) > rng.beta(a2, b2, samples)))


def compare(agents: dict[str, Any], a: str, b: str, metric: str = "success", seed: int = 0) -> dict[str, Any] | None:
    """The comparison of two agents' posteriors of ``metric``: means, intervals, P(a > b) and a verdict."""
    if a not in agents or b not in agents:
        return None
    ea, eb = agents[a][metric], agents[b][metric]
    p = prob_greater(ea["alpha"], ea["beta"], eb["alpha"], eb["beta"], seed)
    verdict = "ahead" if p >= CLEAR else "behind" if p <= 1 - CLEAR else "not separated"
    return {"a": a, "b": b, "metric": metric, "mean_a": ea["mean"], "mean_b": eb["mean"], "ci_a": ea["ci"], "ci_b": eb["ci"],
            "difference": ea["mean"] - eb["mean"], "p_a_greater": p, "verdict": verdict}


def _sentence(c: dict[str, Any], claim: str, kind: str) -> str:
    a, b = LABELS.get(c["a"], c["a"]), LABELS.get(c["b"], c["b"])
    figures = (f"{a} {_pct(c['mean_a'])} % [{_pct(c['ci_a'][0])}, {_pct(c['ci_a'][1])}] vs {b} {_pct(c['mean_b'])} % "
               f"[{_pct(c['ci_b'][0])}, {_pct(c['ci_b'][1])}] success, P({c['a']} > {c['b']}) = {c['p_a_greater']:.2f}")
    v = c["verdict"]
    if kind == "better":
        if v == "ahead":
            outcome = f"agrees here: {a} is clearly ahead of {b}"
        elif v == "behind":
            outcome = f"does not hold here: {a} is clearly behind {b}"
        else:
            outcome = (f"is not settled by these rollouts: {a} is {'above' if c['difference'] > 0 else 'below' if c['difference'] < 0 else 'level with'} "
                       f"{b} but the posteriors overlap")
    elif kind == "similar":
        if v == "not separated":
            outcome = f"is consistent with this run: the two are not separated ({c['difference'] * 100:+.1f} points)"
        else:
            outcome = f"does not hold here: {a} is clearly {'ahead of' if v == 'ahead' else 'behind'} {b} ({c['difference'] * 100:+.1f} points)"
    else:
        outcome = {"ahead": f"here {a} is clearly ahead of {b}", "behind": f"here {a} is clearly behind {b}",
                   "not separated": f"here {a} and {b} are not separated"}[v]
    return f"- *{claim}*: {outcome} ({figures})."


def _stage_rows(markers: dict[str, dict[str, Any]], expected: dict[str, float]) -> list[str]:
    rows = ["| # | stage | what | wall time | expected | finished |", "|---|---|---|---|---|---|"]
    total = total_expected = 0.0
    for i, stage in enumerate(STAGES, 1):
        m = markers.get(stage.name)
        exp = expected.get(stage.name)
        if stage.name == "report":
            rows.append(f"| {i} | report | {stage.title} | (this file) | {_fmt_s(exp * 60) if exp is not None else '-'} | now |")
            continue
        wall = m.get("wall_seconds") if m else None
        total += wall or 0.0
        total_expected += exp or 0.0
        rows.append(f"| {i} | {stage.name} | {stage.title} | {_fmt_s(wall)} | {_fmt_s(exp * 60) if exp is not None else '-'} | "
                    f"{m.get('finished', '-') if m else 'not run'} |")
    rows.append(f"| | **total** | | **{_fmt_s(total)}** | **{_fmt_s(total_expected * 60)}** | |")
    return rows


def _data_rows(markers: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    s = {name: (m.get("summary") or {}) for name, m in markers.items()}
    data = {
        "il_demos": s.get("demos-il", {}),
        "expert_trajectories": s.get("demos-expert", {}),
        "self_generated": s.get("demos-self", {}),
        "pairs_expert": s.get("prefs-expert", {}),
        "pairs_self": s.get("prefs-self", {}),
        "il": s.get("il", {}),
        "dpo_expert": s.get("dpo-expert", {}),
        "dpo_self": s.get("dpo-self", {}),
        "ppo": s.get("ppo", {}),
        "expert_noise": markers.get("demos-expert", {}).get("params", {}).get("settings", {}).get("expert_noise"),
    }
    get = lambda d, k: "-" if d.get(k) is None else d.get(k)
    il, de, ds = data["il"], data["dpo_expert"], data["dpo_self"]
    sg = data["self_generated"]
    acc = sg.get("acceptance_rate")
    rows = [
        "| data | size |", "|---|---|",
        f"| IL demonstrations (expert, noise off) | {get(data['il_demos'], 'trajectories')} trajectories, "
        f"{get(data['il_demos'], 'reward_1')} with reward 1 |",
        f"| (a) expert trajectories (noise {data.get('expert_noise', '?')}; the paper: 1,200 human) | {get(data['expert_trajectories'], 'trajectories')} "
        f"trajectories, {get(data['expert_trajectories'], 'reward_1')} with reward 1, "
        f"{get(data['expert_trajectories'], 'mean_steps')} steps on average |",
        f"| (b) self-generated trajectories (the paper: 100) | {get(sg, 'trajectories')} kept of {get(sg, 'tried')} tried "
        f"({'-' if acc is None else f'{acc:.1f} %'} accepted; {get(sg, 'stopped')}) |",
        f"| (a) preference pairs | {get(data['pairs_expert'], 'pairs')} ({get(data['pairs_expert'], 'train_pairs')} train, "
        f"{get(data['pairs_expert'], 'eval_pairs')} eval) |",
        f"| (b) preference pairs | {get(data['pairs_self'], 'pairs')} ({get(data['pairs_self'], 'train_pairs')} train, "
        f"{get(data['pairs_self'], 'eval_pairs')} eval) |",
        "", "| training | steps | held-out figures |", "|---|---|---|",
        f"| IL | {get(il, 'global_step')} updates | choice accuracy {_fmt_num(il.get('eval_choice_accuracy'))}, "
        f"loss {_fmt_num(il.get('eval_loss'))} |",
        f"| DPO (a) | {get(de, 'global_step')} steps | reward accuracy {_fmt_num(de.get('eval_rewards/accuracies'))}, "
        f"margin {_fmt_num(de.get('eval_rewards/margins'))} |",
        f"| DPO (b) | {get(ds, 'global_step')} steps | reward accuracy {_fmt_num(ds.get('eval_rewards/accuracies'))}, "
        f"margin {_fmt_num(ds.get('eval_rewards/margins'))} |",
        f"| PPO | {get(data['ppo'], 'update')} updates | training episodes: {get(data['ppo'], 'episodes')} finished, "
        f"success {_fmt_num(data['ppo'].get('success_rate'))}, reward {_fmt_num(data['ppo'].get('episode_reward'))} |",
    ]
    return rows, data


def _fmt_num(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def build_report(root: str | Path) -> tuple[str, dict[str, Any]]:
    """The markdown report and the results dict for the pipeline output folder ``root``."""
    from webshop_trl.evaluation.thompson import ThompsonReport

    L = Layout(Path(root).resolve())
    setup = _read_json(L.config_json) or {}
    config = setup.get("config", {})
    budget = setup.get("budget", {})
    expected = budget.get("expected_minutes", {})
    markers = {s.name: m for s in STAGES if (m := _read_json(L.marker(s.name)))}
    report = ThompsonReport.load(L.thompson / "report.json")
    summary = report.summary()
    agents = summary["agents"]
    seed = int(config.get("seed", 0))

    lines = [f"# Pipeline report: {budget.get('name', '?')} budget", ""]
    lines += [f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} from `{L.root}`.", ""]
    lines += [f"**Budget** `{budget.get('name', '?')}`: {budget.get('description', '')}.", ""]
    base = config.get("base_model")
    lines += [f"Base model `{base}`; search engine {config.get('engine')}; device {config.get('device')}; seed {config.get('seed')}. "
              f"Every setting is in `pipeline.json`, each stage's command and parameters in `stages/<stage>.json`, "
              f"its output in `logs/<stage>.log`.", ""]

    lines += ["## Stages", ""] + _stage_rows(markers, expected) + [""]
    data_rows, data = _data_rows(markers)
    lines += ["## Data and training", ""] + data_rows + [""]

    lines += ["## Thompson-sampling evaluation", ""]
    lines += [report.table_markdown().strip(), ""]
    pngs = sorted(L.thompson.glob("*.png"))
    for png in pngs:
        lines += [f"![{png.stem.replace('_', ' ')}]({png.relative_to(L.root).as_posix()})", ""]

    lines += ["## Against the paper's claims", ""]
    lines += [f"Success posteriors pooled over the runs; a difference counts as clear when P(A > B) >= {CLEAR} "
              f"(or <= {1 - CLEAR:.2f}). The sizes here are the `{budget.get('name', '?')}` budget's, not the paper's, "
              "so a claim that does not show here is not refuted by it.", ""]
    comparisons = []
    for a, b, claim, kind in PAPER_CLAIMS:
        c = compare(agents, a, b, seed=seed)
        if c is None:
            continue
        c.update(claim=claim, kind=kind)
        comparisons.append(c)
        lines.append(_sentence(c, claim, kind))
    ranked = sorted(agents, key=lambda n: agents[n]["success"]["mean"], reverse=True)
    lines += ["", "Order by success posterior mean: " + " > ".join(f"{LABELS.get(n, n)} ({_pct(agents[n]['success']['mean'])} %)"
                                                                 for n in ranked)
              + f"; most likely best (P(best {report.config.objective})): {LABELS.get(summary['best'], summary['best'])} "
              f"({agents[summary['best']][report.config.objective]['p_best']:.2f}).", ""]

    results = {
        "format": "webshop-trl/pipeline-results/v1",
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "budget": budget,
        "config": config,
        "stages": {name: {"wall_seconds": m.get("wall_seconds"), "expected_minutes": expected.get(name),
                          "finished": m.get("finished"), "summary": m.get("summary")} for name, m in markers.items()},
        "data": data,
        "thompson": {"config": report.config.to_dict(), "summary": summary, "seconds": report.seconds},
        "comparisons": comparisons,
        "plots": [p.relative_to(L.root).as_posix() for p in pngs],
    }
    return "\n".join(lines), results


def write_report(root: str | Path) -> tuple[Path, Path]:
    L = Layout(Path(root).resolve())
    text, results = build_report(L.root)
    for path, content in ((L.report_md, text), (L.results_json, json.dumps(results, indent=2, default=str))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)
    return L.report_md, L.results_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the pipeline's output folder")
    args = parser.parse_args(argv)
    md, js = write_report(args.output)
    print(md.read_text(encoding="utf-8"))
    print(f"saved {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
