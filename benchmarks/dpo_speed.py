"""Seconds per DPO step of `ActionDPOTrainer` (TRL's DPOTrainer) with the real MiniLM-L6 policy on CPU.

Scenario: ``ActionScorerModel.from_bert()`` (all-MiniLM-L6-v2 weights, WebShop markup tokens), a
batch of preference pairs as in recipes/minilm/dpo/config_full.yaml (pages of
``--max-observation-length`` tokens, ``--candidates`` click candidates of 8-24 tokens each), and
``trainer.train()`` for ``--warmup + --steps`` optimizer steps. A callback stamps the end of every
step; the figure is the median step time after the warm-up. One step = policy forward + backward +
AdamW update, plus, without precomputed reference log-probs, the frozen reference's forward.

Configurations (each a fresh trainer, run in alternating rounds so that drift in machine load hits
them alike):

* reference: ``stored`` (the reference log-probs ``build-preferences`` stores with the pairs, as
  ``reference_log_probs_from_dataset: true`` uses them: no precompute pass, no reference model; the
  benchmark scores its pairs with the reference once, untimed, as the build does, and hands the
  trainer the matching build record), ``precompute`` (TRL's precompute_ref_log_probs: one
  reference forward per pair before training, timed and reported per pair) or ``frozen`` (a frozen
  copy, one reference forward per step);
* ``bf16`` autocast on or off.

For each configuration it prints the projected wall time of 3,000 steps *including set-up*: the
trainer's fixed set-up, plus for ``precompute`` the precompute pass scaled to the 3,000 x
batch-size pairs those steps use, plus 3,000 x the median step.

Other processes on a 2-core machine change these numbers a lot: the share of CPU time that other
processes used during each run is printed (from /proc/stat), and so is the CPU time this process
spent per step (with ``--threads 1`` that is close to the wall time of an idle core, whatever the
load; with 2 threads it is the sum over both).

    python benchmarks/dpo_speed.py [--steps 10] [--warmup 2] [--batch-size 8] [--rounds 1]
        [--max-observation-length 384] [--candidates 10] [--modes stored,precompute,frozen] [--bf16 on,off]
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


PROJECTED_STEPS = 3000


def with_stored_log_probs(base_model, rows, bf16: bool) -> tuple[list[dict], dict]:
    """``rows`` with the reference's log-probs of chosen and rejected (as build-preferences stores
    them: `ActionScorerModel.score`, 16 pages per pass) and the build record that says so."""
    from webshop_trl.preferences import reference_record

    model = copy.deepcopy(base_model).eval()
    scores = model.score([r["prompt"] for r in rows], [r["available_actions"] for r in rows], bf16=bf16, batch_size=16)
    out = [dict(r, ref_chosen_logps=float(lp[r["chosen_index"]]), ref_rejected_logps=float(lp[r["rejected_index"]]))
           for r, lp in zip(rows, scores)]
    return out, {"reference_log_probs": reference_record(model, "ActionScorerModel.from_bert() (benchmark)", bf16=bf16)}


def run_one(base_model, rows, *, mode: str, bf16: bool, args) -> dict:
    import datasets
    from transformers import TrainerCallback

    from webshop_trl.trainers.dpo_config import ActionDPOConfig
    from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer
    from webshop_trl.trainers.policy_init import freeze_encoder

    stamps: list[tuple[float, float]] = []  # (wall, CPU time of this process)
    precompute_seconds = [0.0]

    class Timed(ActionDPOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            started = time.perf_counter()
            try:
                return super()._precompute_ref_logps(dataset, name, batch_size)
            finally:
                precompute_seconds[0] += time.perf_counter() - started

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
        precompute_ref_log_probs=mode == "precompute", precompute_ref_batch_size=args.precompute_batch_size,
        reference_log_probs_from_dataset="true" if mode == "stored" else "false",
        dataloader_num_workers=0, disable_tqdm=True,
    )
    build_info = None
    if mode == "stored":
        rows, build_info = with_stored_log_probs(base_model, rows, bf16)  # the build's work: not timed
    busy0, total0 = cpu_busy()
    own0 = time.process_time()
    started = time.perf_counter()
    peft_config = None
    if args.lora:
        from webshop_trl.trainers.dpo_config import DPOModelArguments

        peft_config = DPOModelArguments(use_peft=True, lora_r=16, lora_alpha=32).peft_config()  # recipes/minilm/dpo/config_lora.yaml
    trainer = Timed(
        model=model, args=config, train_dataset=datasets.Dataset.from_list(rows), callbacks=[Stamp()], peft_config=peft_config,
        preference_build_info=build_info,
    )
    setup = time.perf_counter() - started
    assert trainer.reference_log_probs_source == {"stored": "dataset", "precompute": "precompute"}.get(
        mode, "peft-base" if args.lora else "model"), trainer.reference_log_probs_source
    trainer.train()
    wall = time.perf_counter() - started
    busy1, total1 = cpu_busy()
    own = time.process_time() - own0
    steps = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])][args.warmup:]
    cpu_steps = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])][args.warmup:]
    ncpu = os.cpu_count() or 1
    jiffy_wall = (total1 - total0) / ncpu if total1 > total0 else 0.0
    others = max(0.0, ((busy1 - busy0) / 100.0 - own) / (ncpu * wall)) if jiffy_wall else float("nan")
    pairs = PROJECTED_STEPS * args.batch_size
    precompute_s = precompute_seconds[0] if mode == "precompute" else 0.0
    fixed_setup = setup - precompute_s
    projected_setup = fixed_setup + precompute_s / len(rows) * pairs
    return {
        "reference": mode,
        "bf16": bf16,
        "s_per_step_median": statistics.median(steps),
        "s_per_step_min": min(steps),
        "s_per_step_mean": statistics.fmean(steps),
        "cpu_s_per_step_median": statistics.median(cpu_steps),
        "setup_s": setup,
        "precompute_s": precompute_s,
        "precompute_s_per_pair": (precompute_s / len(rows)) if mode == "precompute" else None,  # TRL's pass, per pair
        "projected_setup_s": projected_setup,  # for the PROJECTED_STEPS x batch-size pairs
        "projected_s": projected_setup + statistics.median(steps) * PROJECTED_STEPS,
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
    p.add_argument("--modes", default="stored,precompute,frozen",
                   help="reference log-probs: stored (with the pairs), precompute (TRL's pass), frozen (a copy); comma-separated")
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
    unknown = [m for m in modes if m not in ("stored", "precompute", "frozen")]
    if unknown:
        p.error(f"unknown --modes {unknown}: choose among stored, precompute, frozen")
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
                res = run_one(base, rows, mode=mode, bf16=bf16, args=args)
                res["round"] = r
                results.append(res)
                pairs = PROJECTED_STEPS * args.batch_size
                extra = (f"; precompute {res['precompute_s_per_pair'] * 1000:.0f} ms/pair -> {pairs:,} pairs "
                         f"{res['projected_setup_s'] / 60:.1f} min" if res["precompute_s_per_pair"] else "")
                print(
                    f"reference={res['reference']:<10} bf16={'on ' if bf16 else 'off'}  median {res['s_per_step_median']:.3f} s/step "
                    f"(min {res['s_per_step_min']:.3f}, mean {res['s_per_step_mean']:.3f}; CPU {res['cpu_s_per_step_median']:.3f} "
                    f"s/step); set-up {res['setup_s']:.1f} s{extra}; "
                    f"{PROJECTED_STEPS:,} steps incl. set-up ~ {res['projected_s'] / 60:.1f} min "
                    f"(steps alone {res['s_per_step_median'] * PROJECTED_STEPS / 60:.1f} min); other processes used "
                    f"{res['others_cpu_share']:.0%} of the CPU",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
