"""Rollout speed of the policy agent on the vector env: the old path (every page and action encoded
at every step, fp32) against the encoding cache and the faster inference modes, in one process.

Scenario (issue 10): the IL-style MiniLM policy (``ActionScorerModel.from_bert(add_webshop_tokens=
True)``, processor max_observation_length 384 / max_action_length 32 as
``recipes/minilm/il/config_full.yaml``; the head is random unless ``--checkpoint`` names a trained
one, which does not change the speed) plays ``--episodes`` goals of ``--split`` on a
``WebShopVectorEnv`` (text_rich, ``--num-envs`` sessions, ``--step-limit`` steps), sampling its
clicks (temperature 1, seeded per decision, so every path sees the same goals and draws).

The goals are dealt into ``--rounds`` rounds; each round runs every path on the same goals, in an
order that rotates from round to round, so load from other processes hits all paths alike. A
path's cache lives on across rounds (as it does across the episodes of an evaluation). Before
timing, each path plays ``--warmup`` other goals (kernel set-up, and the buttons
every episode shows).

Paths (``--paths``, comma-separated; the first is the baseline of the ratios):

* ``old``: ``PolicyAgent(encoding_cache=False)``, fp32: what main did before the cache;
* ``cache``: the encoding cache (the PolicyAgent default), fp32;
* ``cache-bf16``: the cache with ``inference="bf16"`` (bfloat16 autocast);
* ``bf16``: bf16 without the cache.

``--modes-pages N`` then scores N of the choice pages the baseline saw in fp32, bf16 and int8
(dynamic quantisation of the encoder's linear layers, measured only), each without and with a
cold cache, against fp32 without the cache: argmax agreement, |log-prob| differences, pages/s.

It prints, per path: episodes, pages (env steps), choice pages scored, seconds, pages/s and the
ratio to the baseline, the share of time in ``agent.act``, the cache's hit rates, and how many
of the path's actions equal the baseline's at the same (goal, step) (the sampled draws are the
same, so a difference is a choice the scores changed, or a trajectory that changed before).

    python benchmarks/rollout_speed.py [--episodes 24] [--num-envs 8] [--threads 2] [--checkpoint PATH]
        [--paths old,cache,cache-bf16] [--rounds 3] [--split train] [--modes-pages 300] [--wait-idle 600]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import torch

PATHS = {
    "old": dict(encoding_cache=False, inference="fp32"),
    "cache": dict(encoding_cache=True, inference="fp32"),
    "cache-bf16": dict(encoding_cache=True, inference="bf16"),
    "bf16": dict(encoding_cache=False, inference="bf16"),
}


def quantized_int8(model):
    """A copy of ``model`` whose encoder's ``nn.Linear`` layers are int8 dynamically quantised
    (``torch.ao.quantization.quantize_dynamic``: int8 weights per tensor, activations quantised per
    call). Only measured here: it changed about half of the policy's choices, so PolicyAgent has
    no int8 switch."""
    import copy
    import warnings

    from torch import nn

    processor, cache = model.processor, model.encoding_cache
    model.processor, model.encoding_cache = None, None
    try:
        q = copy.deepcopy(model)
    finally:
        model.processor, model.encoding_cache = processor, cache
    q.processor = processor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice (it points to torchao)
        from torch.ao.quantization import quantize_dynamic

        q.text_encoder = quantize_dynamic(q.text_encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return q.eval()


class Timed:
    """Wraps an agent: time spent in ``act`` and the action at each (goal, step)."""

    def __init__(self, agent):
        self.agent = agent
        self.name = agent.name
        self.act_seconds = 0.0
        self.log: dict[tuple[int, int], str] = {}
        self.pages: list[tuple[str, list[str]]] | None = None  # (observation, clicks) of choice pages, if recording

    def act(self, observations, infos):
        t0 = time.perf_counter()
        actions = self.agent.act(observations, infos)
        self.act_seconds += time.perf_counter() - t0
        for obs, info, a in zip(observations, infos, actions):
            self.log[(info["goal_index"], info["step"])] = a
            clicks = [c for c in info.get("available_actions") or [] if c.startswith("click[")]
            if self.pages is not None and info.get("page_type") != "search" and clicks:
                self.pages.append((obs, clicks))
        return actions


def compare_modes(model, pages, batch: int = 8) -> list[dict]:
    """Each inference mode, cached as rollouts run it, against the old path (fp32, no cache) on
    ``pages``: argmax agreement, |log-prob difference|, and pages/s of uncached scoring."""
    modes = {"fp32": (model, False), "bf16": (model, True), "int8": (quantized_int8(model), False)}
    chunks = [pages[i:i + batch] for i in range(0, len(pages), batch)]

    def run(scorer, bf16, cache):
        out, t0 = [], time.perf_counter()
        for chunk in chunks:
            out += scorer.score([o for o, _ in chunk], [c for _, c in chunk], bf16=bf16, cache=cache)
        return out, time.perf_counter() - t0

    from webshop_trl.policy import EncodingCache

    reference, reference_seconds = run(model, False, False)
    rows = []
    for name, (scorer, bf16) in modes.items():
        plain, seconds = run(scorer, bf16, False) if name != "fp32" else (reference, reference_seconds)
        cached, cached_seconds = run(scorer, bf16, EncodingCache())  # a cold cache: recurring pages/actions only
        for label, lp, secs in ((name, plain, seconds), (f"{name} + cache", cached, cached_seconds)):
            diffs = torch.cat([(a - b).abs() for a, b in zip(reference, lp)])
            agree = sum(int(a.argmax()) == int(b.argmax()) for a, b in zip(reference, lp))
            margins = [float(a.topk(2).values[0] - a.topk(2).values[1]) for a in reference if a.numel() > 1]
            rows.append({"mode": label, "pages": len(pages), "argmax_agreement": agree / len(pages),
                         "max_abs_logp_diff": float(diffs.max()), "mean_abs_logp_diff": float(diffs.mean()),
                         "pages_per_s": len(pages) / secs,
                         "median_top2_margin": sorted(margins)[len(margins) // 2] if margins else None})
    return rows


def build_model(checkpoint: str | None):
    from webshop_trl.policy import ActionScorerModel

    if checkpoint:
        from webshop_trl.agents.policy_agent import load_policy

        return load_policy(checkpoint)
    return ActionScorerModel.from_bert(
        add_webshop_tokens=True, use_value_head=False,
        processor_kwargs={"max_observation_length": 384, "max_action_length": 32},
    ).eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=24, help="timed episodes (goals) per path")
    ap.add_argument("--rounds", type=int, default=3, help="the goals are played in this many rounds, paths interleaved")
    ap.add_argument("--warmup", type=int, default=2, help="untimed episodes per path first (other goals)")
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--step-limit", type=int, default=15)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=0, help="which goals are drawn, and the agents' sampling seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", help="a trained policy folder (default: MiniLM with a random head)")
    ap.add_argument("--paths", default="old,cache,cache-bf16")
    ap.add_argument("--search-engine", default=None, help="lucene (default of the env) or bm25s")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                    help="first wait up to this long for the CPU to be 90%% idle for 5 s (shared machines: with 2 "
                         "threads, a busy neighbour makes every OpenMP barrier wait, whatever the path)")
    ap.add_argument("--modes-pages", type=int, default=0, metavar="N",
                    help="then score N of the rollout's choice pages in each inference mode against fp32 (argmax "
                         "agreement, log-prob differences, pages/s)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        ap.error(f"unknown paths {unknown}; choose from {', '.join(PATHS)}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from policy_speed import CpuShare, wait_for_idle_cpu  # noqa: E402  (a sibling script)

    if args.wait_idle > 0 and not wait_for_idle_cpu(args.wait_idle):
        print(f"(the CPU did not become idle within {args.wait_idle:.0f} s; measuring anyway)", file=sys.stderr)

    from webshop_trl.agents.policy_agent import PolicyAgent
    from webshop_trl.envs import WebShopConfig
    from webshop_trl.envs.backend import get_backend
    from webshop_trl.evaluation import evaluate_agent

    config_kwargs = dict(observation_mode="text_rich", step_limit=args.step_limit)
    if args.search_engine:
        config_kwargs["search_engine"] = args.search_engine
    config = WebShopConfig(**config_kwargs)
    split_goals = list(get_backend(config).goals.split(args.split, "index"))
    rng = random.Random(args.seed)
    drawn = rng.sample(split_goals, args.episodes + args.warmup)
    warm_goals, goals = drawn[: args.warmup], drawn[args.warmup:]
    rounds = [goals[r:: args.rounds] for r in range(args.rounds)]

    t0 = time.perf_counter()
    model = build_model(args.checkpoint)
    load_s = time.perf_counter() - t0
    agents = {p: Timed(PolicyAgent(model=model, temperature=1.0, seed=args.seed, name=p, **PATHS[p])) for p in paths}
    if warm_goals:
        for p in paths:
            evaluate_agent(agents[p], config, goal_indices=warm_goals, num_envs=args.num_envs, progress=False)
    for t in agents.values():
        t.act_seconds = 0.0
        t.log.clear()
        t.agent.stats.update({k: 0 for k in t.agent.stats})
        if t.agent.encoding_cache is not False:
            t.agent.encoding_cache.reset_stats()

    agents[paths[0]].pages = [] if args.modes_pages else None
    seconds = {p: 0.0 for p in paths}
    pages = {p: 0 for p in paths}
    episodes = {p: 0 for p in paths}
    rewards = {p: [] for p in paths}
    share = CpuShare().start()
    for r, round_goals in enumerate(rounds):
        order = paths[r % len(paths):] + paths[: r % len(paths)]
        for p in order:
            start = time.perf_counter()
            result = evaluate_agent(agents[p], config, goal_indices=round_goals, num_envs=args.num_envs, progress=False)
            seconds[p] += time.perf_counter() - start
            pages[p] += sum(e.steps for e in result.episodes)
            episodes[p] += len(result.episodes)
            rewards[p] += [e.reward for e in result.episodes]
        done = {p: f"{pages[p] / seconds[p]:.2f}" for p in paths}
        print(f"round {r + 1}/{len(rounds)}: pages/s so far {done}", file=sys.stderr, flush=True)
    other = share.stop()

    base = paths[0]
    rows = []
    for p in paths:
        agent = agents[p].agent
        stats = agent.cache_stats
        same = sum(1 for k, a in agents[p].log.items() if agents[base].log.get(k) == a)
        rows.append({
            "path": p, "episodes": episodes[p], "pages": pages[p], "choice_pages": agent.stats["pages_scored"],
            "seconds": round(seconds[p], 2), "pages_per_s": pages[p] / seconds[p],
            "ratio": (pages[p] / seconds[p]) / (pages[base] / seconds[base]),
            "act_share": agents[p].act_seconds / seconds[p],
            "action_hit_rate": stats["actions"]["hit_rate"] if stats else None,
            "page_hit_rate": stats["observations"]["hit_rate"] if stats else None,
            "invalidations": stats["invalidations"] if stats else None,
            "padding": (stats["padded_tokens"] / stats["encoded_tokens"] - 1) if stats and stats["encoded_tokens"] else None,
            "same_actions": same / max(1, len(agents[p].log)),
            "mean_reward": sum(rewards[p]) / max(1, len(rewards[p])),
        })

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    source = args.checkpoint or "MiniLM-L6 + webshop tokens, random head"
    print(f"rollout_speed: {source}, obs <= 384 / action <= 32 tokens, torch {torch.__version__}, {args.threads} threads; "
          f"{args.episodes} {args.split} goals in {args.rounds} rounds (+{args.warmup} warm-up) on {args.num_envs} sessions, "
          f"step limit {args.step_limit}, sampling at temperature 1; model load {load_s:.1f} s")
    print("| path | episodes | pages | choice pages | s | pages/s | x baseline | in act | action hits | page hits | "
          "miss padding | same actions | mean reward |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    for row in rows:
        print(f"| {row['path']} | {row['episodes']} | {row['pages']} | {row['choice_pages']} | {row['seconds']:.1f} | "
              f"{row['pages_per_s']:.2f} | {row['ratio']:.2f} | {pct(row['act_share'])} | {pct(row['action_hit_rate'])} | "
              f"{pct(row['page_hit_rate'])} | {pct(row['padding'])} | {pct(row['same_actions'])} | {row['mean_reward']:.3f} |")
    other_txt = f"{100 * other:.0f}% of the CPU time" if other is not None else "unknown"
    print(f"other processes used {other_txt} during the timed rounds; load average {load[0]:.2f}")
    mode_rows = []
    if args.modes_pages:
        pages_seen = agents[paths[0]].pages
        picked = random.Random(args.seed).sample(pages_seen, min(args.modes_pages, len(pages_seen)))
        share = CpuShare().start()
        mode_rows = compare_modes(model, picked)
        other = share.stop()
        margin = mode_rows[0]["median_top2_margin"]
        print(f"\ninference modes on {len(picked)} choice pages of the rollout (batches of 8 pages), against fp32 "
              f"without the cache; median fp32 top-2 log-prob margin {margin:.3f}" if margin is not None else "")
        print("| mode | argmax = fp32 | max abs d log p | mean abs d log p | pages/s |")
        print("|---|---|---|---|---|")
        for row in mode_rows:
            print(f"| {row['mode']} | {100 * row['argmax_agreement']:.1f}% | {row['max_abs_logp_diff']:.2e} | "
                  f"{row['mean_abs_logp_diff']:.2e} | {row['pages_per_s']:.2f} |")
        other_txt = f"{100 * other:.0f}% of the CPU time" if other is not None else "unknown"
        print(f"other processes used {other_txt} during the mode comparison")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "modes": mode_rows, "args": vars(args), "other_cpu_share": other, "load_avg": load[0]},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
