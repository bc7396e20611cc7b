"""Print the results table of `recipes/minilm/results/run.sh`: each agent's greedy score and success
rate on the same test goals, its reward parts, and the wall time of the training run behind it.

    python recipes/minilm/results/table.py [--results outputs/results] [--goals 200]
        [--il-eval outputs/eval/il-minilm-greedy-test.json] [--rule-eval outputs/eval/rule-test.json]

Every row is recomputed from the per-episode records of its evaluation JSON, restricted to the
first ``--goals`` test goals (0 .. N-1), so agents evaluated on 500 goals and on fewer compare on
the same goals. Missing evaluations are listed as missing, not skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# (label, evaluation file stem under <results>/eval or "rule"/"il", training stages behind the run)
ROWS = [
    ("rule", "rule", ()),
    ("IL (MiniLM, outputs/il/minilm)", "il", ()),
    ("DPO (a): 1,200 expert trajectories (noise off)", "dpo-expert-1200-noise-off",
     ("demos-expert-1200-noise-off", "prefs-expert-1200-noise-off", "dpo-expert-1200-noise-off")),
    ("DPO (a'): 1,200 expert trajectories with human-like noise", "dpo-expert-1200-noise-on",
     ("demos-expert-1200-noise-on", "prefs-expert-1200-noise-on", "dpo-expert-1200-noise-on")),
    ("DPO (b): 100 self-generated reward-1 trajectories", "dpo-self-100", ("demos-self", "prefs-self", "dpo-self-100")),
    ("PPO (+ entropy + IL loss), 10 updates", "ppo", ("ppo",)),
]
PARTS = ("r_att", "r_option", "r_price", "r_type")


def read_times(path: Path) -> dict[str, int]:
    times = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, seconds, *_ = line.split("\t")
            times[name] = int(seconds)
    return times


def find_eval(results: Path, stem: str, goals: int) -> Path | None:
    """The evaluation covering the most goals (>= ``goals``) among <stem>.json and <stem>-<N>.json."""
    best = None
    for path in sorted((results / "eval").glob(f"{stem}*.json")):
        rest = path.stem[len(stem):]
        if rest and not (rest.startswith("-") and rest[1:].isdigit()):
            continue
        n = len(json.loads(path.read_text()).get("episodes", []))
        if n >= goals and (best is None or n > best[0]):
            best = (n, path)
    return None if best is None else best[1]


def row_of(path: Path, goals: int) -> dict | None:
    episodes = [e for e in json.loads(path.read_text()).get("episodes", []) if e["goal_index"] < goals]
    if len(episodes) < goals:
        return None
    bought = [e for e in episodes if e.get("purchased")]
    def part(k):  # as evaluate's summary: over the purchases where the part applies (r_option: goals with options)
        values = [e["breakdown"][k] for e in bought if e["breakdown"].get(k) is not None]
        return 100 * statistics.fmean(values) if values else float("nan")
    return {
        "score": 100 * statistics.fmean(e["reward"] for e in episodes),
        "success": 100 * statistics.fmean(1.0 if e["success"] else 0.0 for e in episodes),
        "bought": 100 * len(bought) / len(episodes),
        "steps": statistics.fmean(e["steps"] for e in episodes),
        **{k: part(k) for k in PARTS},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="outputs/results")
    ap.add_argument("--goals", type=int, default=200, help="compare on test goals 0 .. N-1")
    ap.add_argument("--il-eval", default="outputs/eval/il-minilm-greedy-test.json")
    ap.add_argument("--rule-eval", default="outputs/eval/rule-test.json")
    args = ap.parse_args(argv)
    results = Path(args.results)
    times = read_times(results / "times.tsv")
    fixed = {"rule": Path(args.rule_eval), "il": Path(args.il_eval)}
    print(f"greedy, test goals 0-{args.goals - 1}; reward parts are means over the episodes that bought")
    print("| agent | score | success % | bought % | r_att | r_option | r_price | r_type | steps | training wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, stem, stages in ROWS:
        path = fixed.get(stem) or find_eval(results, stem, args.goals)
        r = row_of(path, args.goals) if path is not None and path.exists() else None
        wall = sum(times.get(st, 0) for st in stages)
        detail = " + ".join(f"{st} {times[st] / 60:.1f}" for st in stages if st in times)
        wall_txt = f"{wall / 60:.1f} min ({detail})" if stages else ""
        if r is None:
            print(f"| {label} | (no evaluation on these goals) | | | | | | | | {wall_txt} |")
            continue
        print(f"| {label} | {r['score']:.2f} | {r['success']:.1f} | {r['bought']:.1f} | "
              + " | ".join(f"{r[k]:.2f}" for k in PARTS) + f" | {r['steps']:.2f} | {wall_txt} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
