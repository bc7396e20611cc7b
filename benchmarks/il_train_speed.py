"""IL training throughput: pages (decision steps) per second of `ILTrainer` updates on real
expert pages with the real MiniLM-L6, for a few recipe settings, to size a CPU training budget.

Each setting trains ``--updates`` optimizer updates of ``--batch`` pages (forward, cross-entropy
over candidates, backward, AdamW) through `ILTrainer` itself, on decision steps drawn from an
expert demo file, and reports seconds per update and pages/s (after one warm-up update). Settings
alternate round by round so drift in machine load hits them alike; the share of CPU time other
processes took during the run is printed (on a shared 2-core machine it changes the figures a
lot).

    webshop-trl demos expert --split train --num-goals 200 --output outputs/il/demos/expert-train-200.jsonl
    python benchmarks/il_train_speed.py --demos outputs/il/demos/expert-train-200.jsonl [--updates 4] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

SETTINGS = {
    # name: (max_observation_length, bf16, freeze_embeddings, freeze_encoder_layers)
    "512 fp32": (512, False, False, 0),
    "384 fp32": (384, False, False, 0),
    "384 bf16": (384, True, False, 0),
    "384 bf16 freeze emb": (384, True, True, 0),  # recipes/minilm/il/config_full.yaml
    "384 bf16 freeze emb+2": (384, True, True, 2),
    "256 bf16 freeze emb": (256, True, True, 0),
}


def cpu_times() -> tuple[float, float]:
    """(this process's CPU seconds, the whole machine's busy CPU seconds)."""
    own = sum(os.times()[:2])
    with open("/proc/stat") as fh:
        fields = [float(x) for x in fh.readline().split()[1:]]
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    return own, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", required=True, help="expert trajectories (JSONL)")
    parser.add_argument("--updates", type=int, default=4, help="timed updates per setting (plus one warm-up)")
    parser.add_argument("--batch", type=int, default=16, help="pages per update")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from webshop_trl.trainers import ILConfig, ILModelArguments, ILTrainer, load_decision_steps, load_policy

    steps = load_decision_steps([args.demos]).shuffle(seed=0)
    need = args.batch * (args.updates + 1)
    if len(steps) < need:
        raise SystemExit(f"{args.demos} has {len(steps)} decision steps; {need} are needed")
    data = steps.select(range(need))
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            length, bf16, freeze_emb, freeze_layers = SETTINGS[name]
            config = ILConfig(
                output_dir=tmp, use_cpu=True, bf16=bf16, max_observation_length=length, max_action_length=32,
                per_device_train_batch_size=args.batch, gradient_accumulation_steps=1, max_steps=1, learning_rate=1e-4,
                save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=1,
            )
            torch.manual_seed(0)
            model = load_policy(
                ILModelArguments(freeze_embeddings=freeze_emb, freeze_encoder_layers=freeze_layers), config.processor_overrides()
            )
            trainer = ILTrainer(model=model, args=config, train_dataset=data)
            trainer.create_optimizer_and_scheduler(num_training_steps=args.updates + 1)
            trainers[name] = trainer

        times: dict[str, list[float]] = {n: [] for n in trainers}
        own0, busy0 = cpu_times()
        wall0 = time.perf_counter()
        for round_ in range(args.updates + 1):
            batch_rows = data.select(range(round_ * args.batch, (round_ + 1) * args.batch))
            for name, trainer in trainers.items():
                batch = trainer.data_collator([batch_rows[i] for i in range(len(batch_rows))])
                model = trainer.model
                started = time.perf_counter()
                loss = trainer.training_step(model, batch, num_items_in_batch=torch.tensor(args.batch))
                trainer.optimizer.step()
                trainer.optimizer.zero_grad()
                elapsed = time.perf_counter() - started
                if round_ > 0:
                    times[name].append(elapsed)
                assert torch.isfinite(loss)
        own1, busy1 = cpu_times()
        wall = time.perf_counter() - wall0
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall * (os.cpu_count() or 1))
    print(f"{args.updates} timed updates of {args.batch} pages per setting; other processes used {others:.0%} of the CPUs")
    print(f"{'setting':<26} {'s/update':>9} {'pages/s':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<26} {median:>9.2f} {args.batch / median:>8.2f}")


if __name__ == "__main__":
    main()
