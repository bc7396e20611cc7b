"""Distributed check of `ILTrainer`: one process vs several (DDP) must give the same update, the
same logged loss and the same evaluation metrics, on a tiny random BERT and synthetic pages.

    python benchmarks/il_ddp_check.py                      # runs both and compares (CPU, gloo)
    python benchmarks/il_ddp_check.py --nproc 4 --device cuda   # on a GPU machine (nccl)

Each run trains 2 SGD updates of 4 pages (split over the processes: 4/N pages each, no
shuffling) and evaluates 11 pages in batches of 3 per process, so DDP pads the last batch with
duplicates that the metrics must drop. The script launches itself under torchrun for the
multi-process run. On CPU, torchrun runs have been seen to abort at exit now and then, after
the results are written; the comparison uses the written results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COLORS = ["red", "blue", "green", "black"]
WORDS = (
    "webshop instruction i need a back to search buy now price color button clicked < > [ ] : - $ . shirt dress"
).split() + COLORS


def prepare(root: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from webshop_trl.trajectories import Step, Trajectory, write_trajectories

    torch.manual_seed(0)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS))}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(root / "encoder")
    tokenizer.save_pretrained(root / "encoder")
    trajectories = []
    for i in range(20):
        color, item = COLORS[i % 4], ["shirt", "dress"][i % 2]
        clicked = COLORS[(i + 1) % 4] if i % 3 else None
        options = "".join(
            f"[clicked button] {c} [clicked button_]\n" if c == clicked else f"[button] {c} [button_]\n" for c in COLORS
        )
        page = f"WebShop\nInstruction: \ni need a {color} {item}\n[button] Back to Search [button_]\ncolor\n{options}{item}\n"
        candidates = ["click[back to search]", "click[buy now]"] + [f"click[{c}]" for c in COLORS[: 2 + i % 3]]
        action = f"click[{color}]" if f"click[{color}]" in candidates else "click[buy now]"
        trajectories.append(Trajectory(goal={"index": 1500 + i}, steps=[Step(page, candidates, action)], final_reward=1.0))
    write_trajectories(root / "demos.jsonl", trajectories)


def run(root: Path, device: str) -> None:
    import torch

    from webshop_trl.trainers import ILConfig, ILModelArguments, ILTrainer, load_decision_steps, load_policy

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args = ILConfig(
        output_dir=str(root / f"out{world}"), use_cpu=device == "cpu", report_to="none", save_strategy="no",
        disable_tqdm=True, max_observation_length=96, max_action_length=16, per_device_train_batch_size=4 // world,
        gradient_accumulation_steps=1, per_device_eval_batch_size=3, max_steps=2, optim="sgd", learning_rate=1e-2,
        head_learning_rate=5e-2, max_grad_norm=0.0, logging_steps=1, seed=0, ddp_find_unused_parameters=False,
    )
    data = load_decision_steps([root / "demos.jsonl"])
    torch.manual_seed(0)
    model = load_policy(ILModelArguments(encoder_name_or_path=str(root / "encoder")), args.processor_overrides())
    trainer = ILTrainer(model=model, args=args, train_dataset=data.select(range(8)), eval_dataset=data.select(range(8, 19)))
    trainer._get_train_sampler = lambda dataset=None: torch.utils.data.SequentialSampler(dataset or trainer.train_dataset)
    trainer.train()
    metrics = trainer.evaluate()
    if trainer.args.process_index == 0:
        result = {
            "metrics": {k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k},
            "losses": [log["loss"] for log in trainer.state.log_history if "loss" in log],
            "weights": trainer.accelerator.unwrap_model(trainer.model).score_out.weight.detach().cpu().flatten().tolist(),
        }
        (root / f"result{world}.json").write_text(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, choices=[2, 4], help="processes of the DDP run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run(Path(args.worker), args.device)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root)
        me = [sys.executable, os.path.abspath(__file__), "--device", args.device, "--worker", str(root)]
        subprocess.run(me, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc)]
        code = subprocess.run(torchrun + me[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        if not (root / f"result{args.nproc}.json").is_file():
            print(f"the {args.nproc}-process run failed (exit {code})")
            return 1
        one = json.loads((root / "result1.json").read_text())
        many = json.loads((root / f"result{args.nproc}.json").read_text())
    ok = True
    for key in sorted(one["metrics"]):
        a, b = one["metrics"][key], many["metrics"][key]
        same = abs(a - b) <= 1e-5 * max(1.0, abs(a))
        ok &= same
        print(f"{key:<24} 1 process {a:.6f}   {args.nproc} processes {b:.6f}   {'same' if same else 'DIFFERENT'}")
    weight_diff = max(abs(a - b) for a, b in zip(one["weights"], many["weights"]))
    loss_diff = max(abs(a - b) for a, b in zip(one["losses"], many["losses"]))
    ok &= weight_diff < 1e-5 and loss_diff < 1e-5
    print(f"logged losses max diff {loss_diff:.2e}; head weights after 2 updates max diff {weight_diff:.2e}")
    print("OK: the same run" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
