"""Seconds per DPO step of `ActionDPOTrainer` (TRL's DPOTrainer) with the real MiniLM-L6 policy on CPU.

Scenario: ``ActionScorerModel.from_bert()`` (all-MiniLM-L6-v2 weights, WebShop markup tokens), a
batch of preference pairs as in recipes/minilm/dpo/config_full.yaml (pages of
``--max-observation-length`` tokens, ``--candidates`` click candidates of 8-24 tokens each), and
``trainer.train()`` for ``--warmup + --steps`` optimizer steps. A callback stamps the end of every
step; the figure is the median step time after the warm-up. One step = policy forward + backward +
AdamW update, plus, without precomputed reference log-probs, the frozen reference's forward.

Configurations (each a fresh trainer, run in alternating rounds so that drift in machine load hits
them alike):

* reference: ``precompute`` (TRL's precompute_ref_log_probs: one reference forward per pair before
  training, timed separately and reported per pair) or ``frozen`` (a frozen copy, one reference
  forward per step);
* ``bf16`` autocast on or off.

Other processes on a 2-core machine change these numbers a lot: the share of CPU time that other
processes used during each run is printed (from /proc/stat), and so is the CPU time this process
spent per step (with ``--threads 1`` that is close to the wall time of an idle core, whatever the
load; with 2 threads it is the sum over both).

    python benchmarks/dpo_speed.py [--steps 10] [--warmup 2] [--batch-size 8] [--rounds 1]
        [--max-observation-length 384] [--candidates 10] [--modes precompute,frozen] [--bf16 on,off]
        [--freeze-embeddings] [--freeze-layers N] [--lora] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time

import torch

WORDS = (
    "red blue green black white leather cotton womens mens running shoes shirt dress size small medium large "
    "pack ounce organic gluten free natural wireless bluetooth speaker charger cable usb portable waterproof "
    "hair styling cream moisturizer long lasting lightweight comfortable stainless steel table chair bed queen "
    "king sofa living room decor wall art canvas price dollars lower than rating features description reviews"
).split()
BUTTONS = ["click[back to search]", "click[< prev]", "click[next >]", "click[description]", "click[features]", "click[buy now]"]
INSTRUCTION = "i need a pair of red running shoes in size 9, and price lower than 50.00 dollars"


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat), or zeros where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def words_of_tokens(tokenizer, rng: random.Random, n_tokens: int) -> str:
    ids: list[int] = []
    while len(ids) < n_tokens:
        ids += tokenizer(" ".join(rng.choice(WORDS) for _ in range(64)), add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:n_tokens])


def make_pairs(tokenizer, n: int, obs_tokens: int, k: int, seed: int = 0) -> list[dict]:
    """``n`` results-page-like pairs: an observation that fills ``obs_tokens`` (the processor cuts
    it there), ``k`` candidates (WebShop buttons + item clicks of 8-24 tokens), chosen != rejected."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        page = words_of_tokens(tokenizer, rng, obs_tokens + 16)
        items = [f"click[item - {words_of_tokens(tokenizer, rng, rng.randint(6, 22))}]" for _ in range(max(0, k - 3))]
        cands = (BUTTONS[:3] + items)[:k]
        chosen, rejected = rng.sample(range(len(cands)), 2)
        rows.append(
            dict(
                prompt=f"WebShop [SEP] Instruction: [SEP] {INSTRUCTION} [SEP] {page}",
                chosen=cands[chosen], rejected=cands[rejected], available_actions=cands,
                chosen_index=chosen, rejected_index=rejected,
            )
        )
    return rows


def run_one(base_model, rows, *, precompute: bool, bf16: bool, args) -> dict:
    import datasets
    from transformers import TrainerCallback

    from webshop_trl.trainers.dpo_config import ActionDPOConfig
    from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer
    from webshop_trl.trainers.policy_init import freeze_encoder

    stamps: list[tuple[float, float]] = []  # (wall, CPU time of this process)

    class Stamp(TrainerCallback):
        def on_train_begin(self, *a, **k):
            stamps.append((time.perf_counter(), time.process_time()))

        def on_step_end(self, *a, **k):
            stamps.append((time.perf_counter(), time.process_time()))

    model = copy.deepcopy(base_model).train()  # (a copy of an untouched model: TRL has not patched it)
    if args.freeze_layers or args.freeze_embeddings:
        freeze_encoder(model, args.freeze_layers, embeddings=args.freeze_embeddings)
    out = tempfile.mkdtemp(prefix="dpo-speed-")
    config = ActionDPOConfig(
        output_dir=out, max_steps=args.warmup + args.steps, per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1, learning_rate=1e-5, lr_scheduler_type="constant", logging_steps=10**6,
        save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True, bf16=bf16, seed=0,
        precompute_ref_log_probs=precompute, precompute_ref_batch_size=args.precompute_batch_size,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    busy0, total0 = cpu_busy()
    own0 = time.process_time()
    started = time.perf_counter()
    peft_config = None
    if args.lora:
        from webshop_trl.trainers.dpo_config import DPOModelArguments

        peft_config = DPOModelArguments(use_peft=True, lora_r=16, lora_alpha=32).peft_config()  # recipes/minilm/dpo/config_lora.yaml
    trainer = ActionDPOTrainer(
        model=model, args=config, train_dataset=datasets.Dataset.from_list(rows), callbacks=[Stamp()], peft_config=peft_config
    )
    setup = time.perf_counter() - started
    trainer.train()
    wall = time.perf_counter() - started
    busy1, total1 = cpu_busy()
    own = time.process_time() - own0
    steps = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])][args.warmup:]
    cpu_steps = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])][args.warmup:]
    ncpu = os.cpu_count() or 1
    jiffy_wall = (total1 - total0) / ncpu if total1 > total0 else 0.0
    others = max(0.0, ((busy1 - busy0) / 100.0 - own) / (ncpu * wall)) if jiffy_wall else float("nan")
    return {
        "reference": "precompute" if precompute else "frozen",
        "bf16": bf16,
        "s_per_step_median": statistics.median(steps),
        "s_per_step_min": min(steps),
        "s_per_step_mean": statistics.fmean(steps),
        "cpu_s_per_step_median": statistics.median(cpu_steps),
        "setup_s": setup,
        "precompute_s_per_pair": (setup / len(rows)) if precompute else None,  # trainer setup incl. precompute, per pair
        "others_cpu_share": others,
    }


def reference_forward_s_per_pair(base_model, rows, bf16: bool, batch_size: int, repeats: int = 3) -> tuple[float, float]:
    """What precomputing costs per pair: a no-grad forward of ``batch_size`` pairs (median of
    ``repeats``), as (wall, CPU time) seconds per pair."""
    from webshop_trl.trainers.dpo_data import ActionDPODataCollator

    model = copy.deepcopy(base_model).eval()
    batch = ActionDPODataCollator(model.processor)(rows[:batch_size])
    inputs = {k: v for k, v in batch.items() if k not in ("chosen_index", "rejected_index")}
    times, cpu = [], []
    with torch.no_grad():
        for _ in range(repeats + 1):
            started, cpu_started = time.perf_counter(), time.process_time()
            model(**inputs, bf16=bf16)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    n = len(inputs["num_candidates"])
    return statistics.median(times[1:]) / n, statistics.median(cpu[1:]) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds over the configurations")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step (recipes/minilm/dpo/config_full.yaml: 8)")
    p.add_argument("--precompute-batch-size", type=int, default=32)
    p.add_argument("--max-observation-length", type=int, default=384, help="page tokens (the IL recipe's 384)")
    p.add_argument("--max-action-length", type=int, default=32)
    p.add_argument("--candidates", type=int, default=10, help="candidates per page")
    p.add_argument("--modes", default="precompute,frozen")
    p.add_argument("--bf16", default="on,off")
    p.add_argument("--freeze-layers", type=int, default=0, help="do not train the first N encoder layers")
    p.add_argument("--freeze-embeddings", action="store_true", help="do not train the word/position embeddings")
    p.add_argument("--lora", action="store_true", help="LoRA r=16 on every encoder linear layer + the head (config_lora.yaml)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import transformers

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    from webshop_trl.policy import ActionScorerModel

    base = ActionScorerModel.from_bert(
        add_webshop_tokens=True, use_value_head=False,
        processor_kwargs=dict(max_observation_length=args.max_observation_length, max_action_length=args.max_action_length),
    )
    rows = make_pairs(base.processor.tokenizer, args.batch_size * (args.steps + args.warmup), args.max_observation_length, args.candidates)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bf16s = [{"on": True, "off": False}[b.strip()] for b in args.bf16.split(",") if b.strip()]
    print(
        f"# DPO step, MiniLM-L6 ({sum(p.numel() for p in base.parameters()) / 1e6:.1f}M params), batch {args.batch_size} pairs, "
        f"{args.max_observation_length}-token pages, {args.candidates} candidates, freeze_embeddings {args.freeze_embeddings}, "
        f"freeze_layers {args.freeze_layers}, lora {args.lora}, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}",
        flush=True,
    )
    results = []
    if "precompute" in modes:
        for bf16 in bf16s:
            per_pair, cpu_per_pair = reference_forward_s_per_pair(base, rows, bf16, min(len(rows), args.precompute_batch_size))
            results.append({"reference_forward_s_per_pair": per_pair, "reference_forward_cpu_s_per_pair": cpu_per_pair, "bf16": bf16})
            print(
                f"reference forward (what precompute_ref_log_probs costs), bf16={'on ' if bf16 else 'off'}: "
                f"{per_pair * 1000:.0f} ms/pair (CPU {cpu_per_pair * 1000:.0f} ms/pair) at batch "
                f"{min(len(rows), args.precompute_batch_size)}", flush=True,
            )
    for r in range(args.rounds):
        for mode in modes:
            for bf16 in bf16s:
                res = run_one(base, rows, precompute=mode == "precompute", bf16=bf16, args=args)
                res["round"] = r
                results.append(res)
                extra = f", set-up incl. precompute {res['setup_s']:.1f} s" if res["precompute_s_per_pair"] else ""
                print(
                    f"reference={res['reference']:<10} bf16={'on ' if bf16 else 'off'}  median {res['s_per_step_median']:.3f} s/step "
                    f"(min {res['s_per_step_min']:.3f}, mean {res['s_per_step_mean']:.3f}; CPU {res['cpu_s_per_step_median']:.3f} "
                    f"s/step){extra}; "
                    f"3,000 steps ~ {res['s_per_step_median'] * 3000 / 60:.0f} min; other processes used "
                    f"{res['others_cpu_share']:.0%} of the CPU",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
