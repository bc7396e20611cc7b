"""The reference's log-probs stored with the pairs, and how a DPO run tells whether they apply.

When ``build-preferences`` rejects with a reference policy it scores every page with that policy,
so log pi_ref(chosen|s) and log pi_ref(rejected|s) cost nothing more to keep: the columns
``ref_chosen_logps`` / ``ref_rejected_logps`` (the log-softmax over the row's
``available_actions``, after the candidate cap). A DPO run whose reference is that same policy --
same weights, same processor settings, same precision -- can use them as TRL's precomputed
reference log-probs and skip its precompute pass (`webshop_trl.trainers.ActionDPOTrainer`,
``reference_log_probs_from_dataset``).

`reference_record` is what the build writes to ``build_info.json`` (key
``reference_log_probs``); `reference_mismatches` compares such a record with the reference of a run.

The weights fingerprint (`weights_fingerprint`) is a SHA-256 over the tensors that score actions --
the model's ``state_dict`` without the value head (it does not enter log pi(a|s), and DPO recipes
load the policy without it) -- name, dtype, shape and bytes, in name order. It is computed from the
model in memory, so it is the same for a folder, a Hub checkpoint or a model built in code, and
does not depend on how the weights file was written. The file's own SHA-256 is recorded too, for
people.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

REFERENCE_LOG_PROB_COLUMNS: tuple[str, ...] = ("ref_chosen_logps", "ref_rejected_logps")
RECORD_KEY = "reference_log_probs"
FINGERPRINT_METHOD = ("sha256 over the state_dict tensors that score actions (value head excluded): name, dtype, "
                      "shape and bytes of each, in name order")
# Processor settings that do not change a page's log-probs (padding is masked out).
_PROCESSOR_IGNORED = ("processor_class", "pad_to_multiple_of")
# Parameters that do not enter log pi(a|s).
_EXCLUDED_PREFIXES = ("value_head.",)


def weights_fingerprint(model: Any) -> str:
    """SHA-256 of the weights that score actions (see the module docstring)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(_EXCLUDED_PREFIXES):
            continue
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def processor_record(processor: Any) -> dict[str, Any]:
    """The settings of an `ActionScoringProcessor` that decide what the model sees, and a hash of
    its tokenizer's vocabulary (added tokens included)."""
    settings = {k: v for k, v in processor.to_dict().items() if k not in _PROCESSOR_IGNORED}
    vocab = processor.tokenizer.get_vocab()
    vocab_sha = hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()
    return {**settings, "vocab_size": len(vocab), "vocab_sha256": vocab_sha}


def precision_name(bf16: bool, fp16: bool = False) -> str:
    return "fp16" if fp16 else "bf16" if bf16 else "fp32"


def reference_record(model: Any, source: str | None, *, bf16: bool, weights_sha256: dict[str, str] | None = None,
                     hub_commit: str | None = None) -> dict[str, Any]:
    """What identifies the reference whose log-probs the pairs store (``build_info.json`` key
    ``reference_log_probs``)."""
    record: dict[str, Any] = {
        "columns": list(REFERENCE_LOG_PROB_COLUMNS),
        "meaning": "log pi_ref(a|s) of the chosen / rejected action: the reference's log-softmax over the row's "
                   "available_actions (after the candidate cap), in eval mode",
        "reference": source,
        "weights_fingerprint": weights_fingerprint(model),
        "fingerprint_method": FINGERPRINT_METHOD,
        "precision": precision_name(bf16),
        "bf16": bool(bf16),
        "processor": processor_record(model.processor),
    }
    if weights_sha256:
        record["weights_sha256"] = dict(weights_sha256)
    if hub_commit:
        record["hub_commit"] = hub_commit
    return record


def reference_mismatches(record: dict[str, Any] | None, reference: Any, processor: Any, precision: str) -> list[str]:
    """Why the stored log-probs of ``record`` are not those of ``reference`` (a model) scoring
    through ``processor`` in ``precision`` ("fp32", "bf16", "fp16"); empty when they are."""
    if not record:
        return ["the dataset's build info does not say which reference produced its log-probs"]
    out = []
    source = record.get("reference")
    stored = record.get("weights_fingerprint")
    if stored is None:
        out.append("the build info has no weights fingerprint of the reference")
    else:
        current = weights_fingerprint(reference)
        if current != stored:
            out.append(f"weights: the pairs were scored by {source!r} (fingerprint {stored[:12]}...), the DPO reference's "
                       f"weights differ (fingerprint {current[:12]}...)")
    stored_proc = record.get("processor") or {}
    current_proc = processor_record(processor)
    for key in sorted(set(stored_proc) | set(current_proc)):
        if stored_proc.get(key) != current_proc.get(key):
            out.append(f"processor setting {key}: {stored_proc.get(key)!r} when the pairs were scored, "
                       f"{current_proc.get(key)!r} in this run")
    stored_precision = record.get("precision")
    if stored_precision != precision:
        hint = " (build the pairs with --bf16, or train with bf16 false)" if precision == "bf16" else ""
        out.append(f"precision: the pairs were scored in {stored_precision}, this run's reference runs in {precision}{hint}")
    return out


def has_reference_columns(dataset: Any) -> bool:
    names = getattr(dataset, "column_names", None) or []
    return all(c in names for c in REFERENCE_LOG_PROB_COLUMNS)


__all__ = [
    "FINGERPRINT_METHOD",
    "RECORD_KEY",
    "REFERENCE_LOG_PROB_COLUMNS",
    "has_reference_columns",
    "precision_name",
    "processor_record",
    "reference_mismatches",
    "reference_record",
    "weights_fingerprint",
]
