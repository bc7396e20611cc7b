"""The pipeline's report: ``<output>/report.md`` and ``<output>/results.json`` from the stage
markers, the paired comparison and the Thompson-sampling report.

    python -m webshop_trl.pipeline.report outputs/pipeline

The report states the budget, each stage's wall time against its expected minutes, the data sizes
(trajectories, self-generation acceptance, preference pairs), the paired comparison of every agent
on the same test goals (`webshop-trl compare`: the pipeline's split mode first, the other split
mode and the human-written goals beside it), the Thompson table and its plots, and puts the
agents the way the paper's claims are put (IL vs DPO vs PPO; DPO on self-generated vs expert
trajectories). The claims are judged on the headline view's paired differences: a claim of
"better" holds when the 95 % bootstrap interval of the difference lies above 0, fails when it lies
below, and is open otherwise; nothing is concluded in advance. ``results.json`` ``comparisons``
carries, for each claim's pair, view and metric, the difference in points, its interval (``ci``)
and ``p_better``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


from webshop_trl.pipeline.stages import STAGES, Layout
from webshop_trl.progress import fmt_seconds

CLEAR = 0.95  # P(A > B) above this (or below 1 - this) counts as a clear difference

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


def compare(summary: dict[str, Any], a: str, b: str, metric: str = "success") -> dict[str, Any] | None:
    """Two agents' Thompson posteriors of ``metric``: means, intervals, P(a > b) (the report's own
    ``pairwise`` draws, turned round when the pair is stored the other way) and a verdict."""
    agents = summary["agents"]
    if a not in agents or b not in agents:
        return None
    pair = next((p for p in summary["pairwise"][metric] if {p["a"], p["b"]} == {a, b}), None)
    if pair is None:
        return None
    p = pair["p_a_greater"] if pair["a"] == a else 1.0 - pair["p_a_greater"]
    ea, eb = agents[a][metric], agents[b][metric]
    verdict = "ahead" if p >= CLEAR else "behind" if p <= 1 - CLEAR else "not separated"
    return {"a": a, "b": b, "metric": metric, "mean_a": ea["mean"], "mean_b": eb["mean"], "ci_a": ea["ci"], "ci_b": eb["ci"],
            "difference": ea["mean"] - eb["mean"], "p_a_greater": p, "verdict": verdict}


def paired(view: dict[str, Any], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """A - B on ``metric`` in one view of a comparison.json (the file stores B' - A' for the pair in
    agent order; this turns it round when needed): difference in points, ``ci``, ``p_better``."""
    for pair in view.get("pairs", []):
        if (pair["a"], pair["b"]) == (b, a):
            d = pair[metric]
            return {"difference": d["value"], "ci": list(d["ci"]), "p_better": d["p_better"], "p_tie": d["p_tie"]}
        if (pair["a"], pair["b"]) == (a, b):
            d = pair[metric]
            return {"difference": -d["value"], "ci": [-d["ci"][1], -d["ci"][0]], "p_better": d["p_worse"], "p_tie": d["p_tie"]}
    return None


def claim_comparisons(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """For every claim of `PAPER_CLAIMS`, view and metric: A - B with its interval and P(A better)."""
    out = []
    for view in comparison.get("views", []):
        for a, b, claim, kind in PAPER_CLAIMS:
            for metric in ("success", "score"):
                d = paired(view, a, b, metric)
                if d is None:
                    continue
                lo, hi = d["ci"]
                verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "not settled"
                out.append({"a": a, "b": b, "pair": f"{a} against {b}", "claim": claim, "kind": kind,
                            "view": view["name"], "split": view.get("split"), "split_mode": view.get("split_mode"),
                            "goal_kind": view.get("goal_kind"), "headline": bool(view.get("headline")),
                            "goals": view.get("num_goals"), "metric": metric, "difference": d["difference"], "ci": d["ci"],
                            "p_better": d["p_better"], "p_tie": d["p_tie"], "verdict": verdict})
    return out


def _claim_sentence(c: dict[str, Any], score: dict[str, Any] | None) -> str:
    a, b = LABELS.get(c["a"], c["a"]), LABELS.get(c["b"], c["b"])
    lo, hi = c["ci"]
    figures = f"success {c['difference']:+.1f} points [{lo:+.1f}, {hi:+.1f}], P({c['a']} better) = {c['p_better']:.2f}"
    if score is not None:
        figures += f"; score {score['difference']:+.1f} [{score['ci'][0]:+.1f}, {score['ci'][1]:+.1f}]"
    v, kind = c["verdict"], c["kind"]
    if kind == "better":
        outcome = {"ahead": f"holds here: {a} is ahead of {b}, settled",
                   "behind": f"does not hold here: {a} is behind {b}, settled",
                   "not settled": f"is not settled by these goals: the interval of {a} - {b} contains 0"}[v]
    elif kind == "similar":
        outcome = (f"is consistent with these goals: the difference is not settled" if v == "not settled" else
                   f"does not hold here: {a} is {'ahead of' if v == 'ahead' else 'behind'} {b}, settled")
    else:
        outcome = {"ahead": f"here {a} is ahead of {b}, settled", "behind": f"here {a} is behind {b}, settled",
                   "not settled": f"here {a} and {b} are not separated"}[v]
    return f"- *{c['claim']}*: {outcome} ({figures})."


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
    comparison = _read_json(L.compare / "comparison.json") or {}

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

    lines += ["## Paired comparison on the same goals", ""]
    if comparison:
        lines += [f"`{comparison.get('command')}`", ""]
        body = (L.compare / "comparison.md").read_text(encoding="utf-8") if (L.compare / "comparison.md").is_file() else ""
        body = "\n".join(line[1:] if line.startswith("## ") else line for line in body.splitlines() if not line.startswith("# "))
        lines += [body.strip(), ""]
    else:
        lines += ["(no comparison: the compare stage has not run)", ""]

    lines += ["## Thompson-sampling evaluation", ""]
    lines += [report.table_markdown().strip(), ""]
    pngs = sorted(L.thompson.glob("*.png"))
    for png in pngs:
        lines += [f"![{png.stem.replace('_', ' ')}]({png.relative_to(L.root).as_posix()})", ""]

    lines += ["## Against the paper's claims", ""]
    comparisons = claim_comparisons(comparison)
    headline = [c for c in comparisons if c["headline"]]
    if headline:
        view = headline[0]
        lines += [f"Judged on the headline view ({view['view']} split, {view['split']} goals, {view['goals']} goals), greedy "
                  "agents, paired differences A - B with 95 % bootstrap intervals over goals. A claim holds or fails only "
                  "when the interval excludes 0. The sizes here are the "
                  f"`{budget.get('name', '?')}` budget's, not the paper's, so a claim that does not show here is not refuted "
                  "by it. Every view, metric and pair is in `results.json` (`comparisons`).", ""]
        for c in headline:
            if c["metric"] != "success":
                continue
            score = next((x for x in headline if x["metric"] == "score" and x["a"] == c["a"] and x["b"] == c["b"]), None)
            lines.append(_claim_sentence(c, score))
        lines.append("")
    else:
        lines += ["(no paired comparison to judge the claims on)", ""]
    thompson_comparisons = []
    for a, b, claim, kind in PAPER_CLAIMS:
        c = compare(summary, a, b)
        if c is not None:
            thompson_comparisons.append({**c, "claim": claim, "kind": kind})

    results = {
        "format": "webshop-trl/pipeline-results/v1",
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "budget": budget,
        "config": config,
        "stages": {name: {"wall_seconds": m.get("wall_seconds"), "expected_minutes": expected.get(name),
                          "finished": m.get("finished"), "summary": m.get("summary")} for name, m in markers.items()},
        "data": data,
        "comparison": {k: comparison.get(k) for k in ("command", "method", "config", "views", "seconds")} if comparison else None,
        "comparisons": comparisons,
        "thompson": {"config": report.config.to_dict(), "summary": summary, "seconds": report.seconds,
                     "comparisons": thompson_comparisons},
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
