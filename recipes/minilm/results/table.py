"""Print the results table of `recipes/minilm/results/run.sh`: each agent's greedy score and success
rate on the 500 test goals, its reward parts, and the wall time of the training run behind it.

    python recipes/minilm/results/table.py [--results outputs/results] [--il-eval outputs/eval/il-minilm-greedy-test.json]
        [--rule-eval outputs/eval/rule-test.json]

Missing evaluations are listed as missing, not skipped, so a half-finished run is visible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROWS = [  # (label, eval file key, training stages whose wall times add up to the run)
    ("rule", "rule", ()),
    ("IL (MiniLM, outputs/il/minilm)", "il", ()),
    ("DPO (a): 1,200 noise-on expert trajectories", "dpo-expert-1200", ("prefs-expert", "dpo-expert-1200")),
    ("DPO (b): 100 self-generated reward-1 trajectories", "dpo-self-100", ("demos-self", "prefs-self", "dpo-self-100")),
    ("PPO (+ entropy + IL loss)", "ppo", ("ppo",)),
]


def read_times(path: Path) -> dict[str, int]:
    times = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, seconds, *_ = line.split("\t")
            times[name] = int(seconds)
    return times


def summary_of(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data.get("summary", data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="outputs/results")
    ap.add_argument("--il-eval", default="outputs/eval/il-minilm-greedy-test.json")
    ap.add_argument("--rule-eval", default="outputs/eval/rule-test.json")
    args = ap.parse_args(argv)
    results = Path(args.results)
    times = read_times(results / "times.tsv")
    files = {"rule": Path(args.rule_eval), "il": Path(args.il_eval)}
    print("| agent | score | success % | r_att | r_option | r_price | r_type | steps | training wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, key, stages in ROWS:
        s = summary_of(files.get(key, results / "eval" / f"{key}.json"))
        wall = sum(times.get(st, 0) for st in stages)
        detail = " + ".join(f"{st} {times[st] / 60:.1f}" for st in stages if st in times)
        wall_txt = f"{wall / 60:.1f} min ({detail})" if stages else ""
        if s is None:
            print(f"| {label} | (not evaluated yet) | | | | | | | {wall_txt} |")
            continue
        print(f"| {label} | {s['score']:.2f} | {s['success_rate']:.1f} | {s['mean_r_att']:.2f} | {s['mean_r_option']:.2f} | "
              f"{s['mean_r_price']:.2f} | {s['mean_r_type']:.2f} | {s['mean_steps']:.2f} | {wall_txt} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
