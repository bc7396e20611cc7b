"""How fast *can* one scoring call of the policy be on this CPU? The arithmetic floor of issue 3's
speed targets (one page, a 512-token observation, 10 candidates: <= 40 ms inference, <= 150 ms for
a training step).

The floor is the call's floating-point work (counted by ``torch.utils.flop_counter.FlopCounterMode``
on the real model, not estimated) divided by the best matrix-multiply rate this CPU reaches
(large square GEMMs through the same torch/oneDNN kernels, fp32 and bf16). A call cannot be faster
than that, whatever the implementation; the ratio measured/floor says how much is left to gain by
tuning kernels. A dynamically int8-quantised copy of the linear layers (inference only; it changes
the scores a little, reported as the largest logit difference and whether the argmax changed) is
timed too, as the one kind of arithmetic that is cheaper than bf16 on CPUs with VNNI.

    python benchmarks/policy_flops.py [--threads 2] [--repeats 15] [--checkpoint outputs/il/minilm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode


def gemm_peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n matmul in ``dtype`` (bf16 through autocast-free bf16 tensors)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--observation-tokens", type=int, default=512)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--action-tokens", type=int, default=23)
    ap.add_argument("--checkpoint", default=None,
                    help="an ActionScorerModel folder (default: a fresh MiniLM-L6 policy; the FLOPs are the same)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from webshop_trl.policy import ActionScorerConfig, ActionScorerModel

    if args.checkpoint:
        model = ActionScorerModel.from_pretrained(args.checkpoint)
    else:
        model = ActionScorerModel(ActionScorerConfig())
    model.eval()
    obs = torch.randint(1000, 20000, (1, args.observation_tokens))  # word pieces of BERT's uncased vocab
    act = torch.randint(1000, 20000, (args.candidates, args.action_tokens))
    batch = dict(input_ids=obs, attention_mask=torch.ones_like(obs), action_input_ids=act,
                 action_attention_mask=torch.ones_like(act), num_candidates=torch.tensor([args.candidates]))

    def forward(m=model, bf16=False):
        with torch.inference_mode():
            return m(**batch, bf16=bf16).logits

    def train_step(bf16=False):
        model.train()
        out = model(**batch, labels=torch.tensor([0]), bf16=bf16)
        out.loss.backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    with FlopCounterMode(display=False) as fc:
        forward()
    fwd_flops = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        train_step()
    train_flops = fc.get_total_flops()

    peak = {"fp32": gemm_peak_gflops(torch.float32), "bf16": gemm_peak_gflops(torch.bfloat16)}
    measured = {
        "inference": {p: median_ms(lambda p=p: forward(bf16=p == "bf16"), args.repeats) for p in peak},
        "train step": {p: median_ms(lambda p=p: train_step(bf16=p == "bf16"), max(5, args.repeats // 2)) for p in peak},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    int8_ms = median_ms(lambda: forward(m=q), args.repeats)
    ref, got = forward(), forward(m=q)
    drift = (ref - got).abs().max().item()
    same_argmax = bool(ref.argmax(-1).eq(got.argmax(-1)).all())

    flops = {"inference": fwd_flops, "train step": train_flops}
    targets = {"inference": 40, "train step": 150}
    print(f"policy_flops: torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; "
          f"page: obs {tuple(obs.shape)}, actions {tuple(act.shape)}")
    print(f"GEMM peak (2048^3 matmul, best of 5): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print("| call | GFLOP | floor fp32 ms | measured fp32 ms | floor bf16 ms | measured bf16 ms | target ms |")
    print("|---|---|---|---|---|---|---|")
    for call in ("inference", "train step"):
        g = flops[call] / 1e9
        print(f"| {call} | {g:.1f} | {g / peak['fp32'] * 1e3:.0f} | {measured[call]['fp32']:.0f} | "
              f"{g / peak['bf16'] * 1e3:.0f} | {measured[call]['bf16']:.0f} | <= {targets[call]} |")
    print(f"int8 dynamic quantisation of the linear layers, inference: {int8_ms:.0f} ms "
          f"(largest logit change {drift:.2f}, same argmax: {same_argmax})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
