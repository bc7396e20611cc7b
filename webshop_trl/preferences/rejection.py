"""How the rejected action of a preference pair is chosen.

The chosen action is always the demonstration's. The rejected one is either

* **reference** (Feng & Feng, KDD'24 RelKD, section 3.1): what a reference policy would do on that
  page. Greedy: the reference's argmax. With a temperature T: a draw from softmax(log pi / T).
  When the reference's choice *is* the chosen action the pair would be (a, a); the rejected action
  is then the reference's choice among the *other* candidates -- its best other action when
  greedy, a draw from its distribution renormalised over the others when sampling -- and the row
  is flagged ``reference_agreed=True`` (``skip_agreeing`` drops such rows instead);
* **uniform**: a candidate drawn uniformly from the page's other candidates.

With a reference, each `Rejection` also carries log pi_ref of the chosen and of the rejected action
(the builder stores them: `webshop_trl.preferences.reference`).

Every random draw uses its own generator seeded by ``(seed, row key)``, so a row's rejected
action depends on the seed and that row only: not on batch size, row order or other inputs.
"Other" means a candidate whose *text* differs from the chosen action (a page can list the same
text twice); a page with no such candidate cannot form a pair and is skipped by the builder.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from webshop_trl.datasets import DecisionStep

REJECTION_METHODS = ("reference", "uniform")


@dataclass
class Rejection:
    index: int  # the rejected candidate
    reference_index: int | None = None  # the reference's own choice (None for uniform)
    agreed: bool | None = None  # the reference's choice was the chosen action (None for uniform)
    chosen_log_prob: float | None = None  # log pi_ref(chosen|s) (None for uniform)
    rejected_log_prob: float | None = None  # log pi_ref(rejected|s) (None for uniform)


def other_indices(step: DecisionStep) -> list[int]:
    """Candidates whose text differs from the chosen action."""
    chosen = step.chosen
    return [i for i, a in enumerate(step.candidates) if a != chosen]


def row_rng(seed: int, purpose: str, key: str) -> random.Random:
    """A generator for one row; `random.Random(str)` hashes the string with SHA-512, so this is the
    same on every machine and Python process (no PYTHONHASHSEED dependence)."""
    return random.Random(f"webshop-trl/preferences:{seed}:{purpose}:{key}")


class UniformRejector:
    method = "uniform"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed}

    def reject(self, steps: Sequence[DecisionStep], keys: Sequence[str], progress: Callable[[int], None] | None = None) -> list[Rejection]:
        out = []
        for step, key in zip(steps, keys):
            others = other_indices(step)
            out.append(Rejection(index=row_rng(self.seed, "uniform", key).choice(others)))
        if progress is not None:
            progress(len(steps))
        return out


class ReferencePolicyRejector:
    """Rejects with a reference `ActionScorerModel` (see the module docstring).

    Args:
        model: the reference policy, with its processor attached (``from_pretrained`` of a saved
            folder attaches it); put in eval mode here.
        temperature: None or 0: greedy; > 0: sample from softmax(log pi / temperature).
        seed: seeds the draws (sampling only).
        batch_size: pages per forward pass. Pages are scored in order of observation length, so a
            batch holds pages of similar length (less padding).
        bf16: bfloat16 autocast (off by default: exact and reproducible float32 scores).
        source: where the model came from (path or hub id), recorded in the build info.
    """

    method = "reference"

    def __init__(self, model: Any, *, temperature: float | None = None, seed: int = 0, batch_size: int = 16,
                 bf16: bool = False, source: str | None = None):
        if temperature is not None and (not math.isfinite(temperature) or temperature < 0):
            raise ValueError(f"temperature must be >= 0 (0 or None: greedy), got {temperature}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if getattr(model, "processor", None) is None:
            raise ValueError("the reference model has no processor (tokenizer) attached; save it with save_pretrained "
                             "so the tokenizer files sit beside the weights, or call model.attach_processor(...)")
        self.model = model.eval()
        self.temperature = temperature or None
        self.seed = seed
        self.batch_size = batch_size
        self.bf16 = bf16
        self.source = source
        self.scoring_seconds = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "decoding": "greedy" if self.temperature is None else f"sampled, temperature {self.temperature:g}",
            "temperature": self.temperature,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "bf16": self.bf16,
            "scoring_seconds": round(self.scoring_seconds, 3),
        }

    def log_probs(self, steps: Sequence[DecisionStep], progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """log pi(a|s) of each candidate of each page, under the reference."""
        order = sorted(range(len(steps)), key=lambda i: (len(steps[i].observation), i))
        out: list[list[float] | None] = [None] * len(steps)
        start = time.perf_counter()
        for b in range(0, len(order), self.batch_size):
            batch = order[b:b + self.batch_size]
            scores = self.model.score([steps[i].observation for i in batch], [steps[i].candidates for i in batch], bf16=self.bf16)
            for i, lp in zip(batch, scores):
                out[i] = [float(x) for x in lp.tolist()]
            if progress is not None:
                progress(len(batch))
        self.scoring_seconds += time.perf_counter() - start
        return out  # type: ignore[return-value]

    def reject(self, steps: Sequence[DecisionStep], keys: Sequence[str], progress: Callable[[int], None] | None = None) -> list[Rejection]:
        all_log_probs = self.log_probs(steps, progress)
        return [self.choose(step, lp, key) for step, lp, key in zip(steps, all_log_probs, keys)]

    def choose(self, step: DecisionStep, log_probs: Sequence[float], key: str) -> Rejection:
        """The rejection of one page from its reference log-probs (kept in the result: the builder
        stores log pi_ref of the chosen and the rejected action)."""
        others = other_indices(step)
        chosen_text = step.chosen
        if self.temperature is None:
            ref = max(range(len(log_probs)), key=lambda i: (log_probs[i], -i))  # argmax, first on ties
            agreed = step.candidates[ref] == chosen_text
            index = max(others, key=lambda i: (log_probs[i], -i)) if agreed else ref
        else:
            rng = row_rng(self.seed, "reference", key)
            ref = _sample(rng, log_probs, range(len(log_probs)), self.temperature)
            agreed = step.candidates[ref] == chosen_text
            index = _sample(rng, log_probs, others, self.temperature) if agreed else ref
        return Rejection(index=index, reference_index=ref, agreed=agreed,
                         chosen_log_prob=float(log_probs[step.label]), rejected_log_prob=float(log_probs[index]))


def _sample(rng: random.Random, log_probs: Sequence[float], indices: Sequence[int], temperature: float) -> int:
    """A draw from softmax(log_probs[indices] / temperature), in float64 Python arithmetic."""
    indices = list(indices)
    scaled = [log_probs[i] / temperature for i in indices]
    top = max(scaled)
    weights = [math.exp(s - top) for s in scaled]
    u = rng.random() * sum(weights)
    acc = 0.0
    for i, w in zip(indices, weights):
        acc += w
        if u < acc:
            return i
    return indices[-1]
