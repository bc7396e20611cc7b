"""Figures of an expert run: how many goals reach reward 1.0, and why the others do not."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Iterable

from webshop_trl.experts.oracle import PERFECT
from webshop_trl.trajectories.format import Trajectory

FAILURE_HELP = {
    "goal_product_below_1:options/normalize_color": "even the goal's own product with the goal's options scores < 1: "
    "WebShop's normalize_color turns the bought value into a colour word by a substring test ('1877blue' -> 'blue', "
    "'rectangular' -> 'tan'), which then misses the goal's (name, value) pair",
    "goal_product_below_1:options/fuzzy": "even the goal's own product with the best option values scores < 1: a goal option "
    "that no selectable value matches fuzzily",
    "goal_product_below_1:attributes": "the goal's own product lacks a goal attribute (no fuzzy or substring match)",
    "goal_product_below_1:type": "the goal's own product fails the type match (title nouns)",
    "goal_product_below_1:price": "the goal's own product costs more than the goal's price bound",
    "target_not_found": "the goal's product is not in the top 50 of any query tried, and nothing shown scores 1.0",
    "no_results": "no query returned any product",
    "step_limit": "no purchase within the step limit (a bug if noise caused it)",
    "invalid_action": "the environment rejected a planned action (a bug)",
    "reward_mismatch": "the environment's reward differs from the planned one (a bug)",
}


def summarize(trajectories: Iterable[Trajectory], seconds: float | None = None) -> dict[str, Any]:
    """Success counts, failure classes, step and noise figures of expert trajectories."""
    n = success = purchased = found = chose_other = fallback = 0
    rewards: list[float] = []
    steps: list[int] = []
    failures: Counter[str] = Counter()
    corrected: Counter[str] = Counter()  # failures the corrected option comparison would score 1.0
    examples: dict[str, list[int]] = {}
    query_kinds: Counter[str] = Counter()
    noise: Counter[str] = Counter()
    pages: Counter[int] = Counter()
    for t in trajectories:
        m = t.metadata
        n += 1
        rewards.append(t.final_reward)
        steps.append(len(t.steps) if t.steps else int(m.get("num_steps", 0)))  # --report drops the steps
        success += t.final_reward >= PERFECT
        purchased += bool(m.get("completed"))
        found += bool(m.get("found_target"))
        if m.get("chosen_asin") and not m.get("chosen_is_target"):
            chose_other += 1
        query_kinds[str(m.get("query_kind"))] += 1
        if m.get("query_kind") and any(q.get("fallback") and q["query"] == m.get("query") for q in m.get("queries_tried", [])):
            fallback += 1
        if m.get("chosen_rank") is not None:
            pages[int(m["chosen_rank"]) // 10 + 1] += 1
        for e in m.get("noise_events", []):
            noise[e["kind"]] += 1
        if t.final_reward < PERFECT:
            reason = m.get("failure") or "unknown"
            failures[reason] += 1
            if (m.get("target_corrected_reward") or 0.0) >= PERFECT:
                corrected[reason] += 1
            examples.setdefault(reason, [])
            if len(examples[reason]) < 5:
                examples[reason].append(m.get("goal_index"))
    return {
        "episodes": n,
        "success": success,
        "success_rate": 100.0 * success / n if n else 0.0,
        "score": 100.0 * statistics.fmean(rewards) if rewards else 0.0,
        "purchased": purchased,
        "found_target": found,
        "bought_other_product": chose_other,
        "fallback_query_used": fallback,
        "mean_steps": statistics.fmean(steps) if steps else 0.0,
        "max_steps": max(steps, default=0),
        "query_kinds": dict(query_kinds.most_common()),
        "results_page_of_purchase": dict(sorted(pages.items())),
        "noise_events": dict(noise.most_common()),
        "failures": dict(failures.most_common()),
        "failures_1_with_corrected_reward": dict(corrected.most_common()),
        "failure_examples": examples,
        "seconds": seconds,
    }


def format_summary(title: str, s: dict[str, Any]) -> str:
    """A plain-text table of `summarize`'s figures."""
    n = s["episodes"] or 1
    lines = [
        f"== {title}",
        f"episodes                {s['episodes']}",
        f"reward 1.0              {s['success']} ({s['success_rate']:.2f} %)",
        f"score (100 x mean)      {s['score']:.2f}",
        f"purchased               {s['purchased']}",
        f"goal product found      {s['found_target']} ({100 * s['found_target'] / n:.2f} %) in the top 50 of a query tried",
        f"bought another product  {s['bought_other_product']}",
        f"fallback (title) query  {s['fallback_query_used']}",
        f"steps mean / max        {s['mean_steps']:.2f} / {s['max_steps']}",
        f"query kinds used        {s['query_kinds']}",
        f"results page of buy     {s['results_page_of_purchase']}",
        f"noise events            {s['noise_events']}",
    ]
    if s.get("seconds") is not None:
        lines.append(f"time                    {s['seconds']:.1f} s ({1000 * s['seconds'] / n:.1f} ms/episode)")
    lines.append("failures (reward < 1):" if s["failures"] else "failures (reward < 1): none")
    for reason, count in s["failures"].items():
        fixed = s.get("failures_1_with_corrected_reward", {}).get(reason, 0)
        lines.append(f"  {count:5d}  {reason}  e.g. goals {s['failure_examples'].get(reason)}")
        if fixed:
            lines.append(f"         {fixed} of them: the goal's product scores 1.0 with faithful_reward_quirks=False")
        if reason in FAILURE_HELP:
            lines.append(f"         {FAILURE_HELP[reason]}")
    return "\n".join(lines)
