"""Seconds per PPO update (rollout + optimisation) of `PPOTrainer` with the real MiniLM-L6 policy on CPU.

Scenario: the settings of a PPO recipe (default recipes/minilm/ppo/config_full.yaml: 4 envs x 8
steps, 2 epochs x 2 minibatches, processor lengths 512/128, IL term on ``il_batch_size``
demonstration pages per minibatch), on the real environment (1k catalog, Lucene search, train
goals). The policy is the recipe's checkpoint when it exists, else ``ActionScorerModel.from_bert``
(all-MiniLM-L6-v2 weights, WebShop markup tokens, new value head): the same size either way.
The IL term uses the recipe's demonstrations when the file exists, else (``il`` reported false) it
is off. Runs ``--warmup + --updates`` updates and reports the median rollout, optimisation and
total seconds per update after the warm-up.

    python benchmarks/ppo_speed.py [--config recipes/minilm/ppo/config_full.yaml] [--updates 3] [--warmup 1]
        [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "recipes/minilm/ppo/config_full.yaml"))
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from webshop_trl.policy import ActionScorerModel
    from webshop_trl.scripts import ppo
    from webshop_trl.trainers.ppo_trainer import PPOTrainer

    out_dir = tempfile.mkdtemp(prefix="ppo-speed-")
    script_args, config, model_args = ppo.make_parser().parse_args_and_config(
        ["--config", args.config, "--output_dir", out_dir, "--num_updates", str(args.warmup + args.updates),
         "--save_steps", "0", "--logging_steps", "1"]
    )
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    if model_args.model_name_or_path and os.path.isfile(os.path.join(model_args.model_name_or_path, "model.safetensors")):
        model = ppo.build_policy(model_args, config)
        source = model_args.model_name_or_path
    else:
        overrides = config.processor_overrides()
        model = ActionScorerModel.from_bert(add_webshop_tokens=True, use_value_head=True, processor_kwargs=overrides).train()
        source = "from_bert (MiniLM-L6, new head)"
        if model_args.use_peft:
            from peft import get_peft_model

            processor = model.processor
            model = get_peft_model(model, model_args.peft_config())
            model.processor = processor
    il_dataset = None
    if config.il_coef > 0 and script_args.il_dataset_paths and all(os.path.exists(p) for p in script_args.il_dataset_paths):
        il_dataset = ppo.load_il_dataset(script_args, config)
    elif config.il_coef > 0:
        config.il_coef = 0.0
    trainer = PPOTrainer(model, config, script_args, il_dataset=il_dataset)
    load_s = time.perf_counter() - started
    history = trainer.train()
    timed = history[args.warmup:]
    med = lambda key: statistics.median(m[key] for m in timed)  # noqa: E731
    result = {
        "config": os.path.relpath(args.config, REPO), "policy": source, "il": il_dataset is not None,
        "num_envs": config.num_envs, "num_steps": config.num_steps, "num_epochs": config.num_epochs,
        "num_minibatches": config.num_minibatches, "max_observation_length": model.processor.max_observation_length
        if hasattr(model.processor, "max_observation_length") else None,
        "updates_timed": len(timed), "rollout_s": med("rollout_s"), "optimise_s": med("optimise_s"),
        "update_s": statistics.median(m["rollout_s"] + m["optimise_s"] for m in timed),
        "env_steps_per_s": config.batch_size / statistics.median(m["rollout_s"] + m["optimise_s"] for m in timed),
        "setup_s": load_s, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "per_update": [{k: m[k] for k in ("rollout_s", "optimise_s", "decision_fraction")} for m in history],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
