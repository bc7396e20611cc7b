"""Environment steps per second on WebShop's fixed episode mix (shared/webshop_data/reference/README.md).

For goal indices 0..199 (synthetic goals, 1k catalog, text mode): search the instruction, next
page, previous page, the first product, the first value of each option group, description, back,
features, back, buy. One core (CPU affinity 0), an untimed warm-up pass, then a timed pass;
the median of 3 fresh processes. WebShop's own env did 74.3 steps/s on this mix here.

    python benchmarks/env_throughput.py [--engine lucene|bm25s] [--processes 3] [--cold-reward]

``--cold-reward`` empties the reward's spaCy noun cache before the timed pass, so every purchase
parses its titles again (the warm-up pass otherwise leaves them cached).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict

N_GOALS = 200


def episode_actions(env, goal_index: int):
    """Yield (kind, action) for one scripted episode, reading the page as it goes."""
    obs, info = env.reset(options={"goal_index": goal_index})
    yield "reset", None
    steps = [("search", f"search[{env.goal.instruction_text.lower()}]"), ("paging", "click[next >]"), ("paging", "click[< prev]")]
    for kind, action in steps:
        yield kind, action
    links = [c for c in env.get_available_actions()["clickables"] if c not in ("back to search", "< prev", "next >")]
    if not links:
        return
    yield "item", f"click[{links[0]}]"
    product = env.catalog.by_asin[links[0].upper()]
    for values in product.options.values():
        yield "option", f"click[{values[0]}]"
    for kind, action in [("sub_page", "click[description]"), ("sub_page", "click[< prev]"), ("sub_page", "click[features]"), ("sub_page", "click[< prev]"), ("buy", "click[buy now]")]:
        yield kind, action


def run_pass(env, timed: bool):
    per_kind = defaultdict(float)
    counts = defaultdict(int)
    reset_time = 0.0
    steps = 0
    for g in range(N_GOALS):
        gen = episode_actions(env, g)
        t0 = time.perf_counter()
        _ = next(gen)  # the reset happens inside the generator
        reset_time += time.perf_counter() - t0
        for kind, action in gen:
            t0 = time.perf_counter()
            _, _, term, trunc, info = env.step(action)
            dt = time.perf_counter() - t0
            if not info["valid_action"]:
                raise RuntimeError(f"scripted action invalid on goal {g}: {action} ({info.get('invalid_reason')})")
            per_kind[kind] += dt
            counts[kind] += 1
            steps += 1
    return {"steps": steps, "step_seconds": sum(per_kind.values()), "reset_seconds": reset_time,
            "ms_per_step": {k: 1000 * per_kind[k] / counts[k] for k in per_kind}, "counts": dict(counts)}


def child(engine: str, cold_reward: bool) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    import torch  # noqa: F401  (not used; keeps thread pools of later imports comparable)
    from webshop_trl.envs import WebShopEnv

    env = WebShopEnv(search_engine=engine, observation_mode="text")
    run_pass(env, timed=False)
    if cold_reward:
        from webshop_trl.reward import get_noun_extractor

        get_noun_extractor().cache_clear()
    result = run_pass(env, timed=True)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="lucene", choices=["lucene", "bm25s"])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--cold-reward", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.engine, args.cold_reward)
        return
    runs = []
    for _ in range(args.processes):
        cmd = [sys.executable, __file__, "--child", "--engine", args.engine] + (["--cold-reward"] if args.cold_reward else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    rates = sorted(r["steps"] / r["step_seconds"] for r in runs)
    rates_with_reset = sorted(r["steps"] / (r["step_seconds"] + r["reset_seconds"]) for r in runs)
    median = runs[[r["steps"] / r["step_seconds"] for r in runs].index(statistics.median_low(rates))]
    print(f"engine={args.engine} cold_reward={args.cold_reward} steps/pass={median['steps']} (WebShop's mix: 2,203)")
    print(f"steps/s, one core, median of {args.processes}: {statistics.median(rates):,.0f}  "
          f"(with resets: {statistics.median(rates_with_reset):,.0f}; runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    print("WebShop's own env on this mix: 74.3 steps/s (73.1 with resets)")
    print("ms per step by kind (median run):")
    for kind, ms in sorted(median["ms_per_step"].items(), key=lambda kv: -kv[1]):
        print(f"  {kind:9s} {ms:7.3f} ms  x{median['counts'][kind]}")


if __name__ == "__main__":
    main()
