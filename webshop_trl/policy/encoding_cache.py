"""`EncodingCache`: reuse the encoder's token states of recurring actions and pages at inference.

Why: `ActionScorerModel` encodes each candidate action without the page (``[CLS] action [SEP]``)
and the page without the actions, so an action string has the same encoding on every page it
appears on. In rollouts and evaluation the same actions come back at every step of every episode
("click[next >]", "click[buy now]", option values, the ASINs of products that recur across result
pages), and the same results page recurs within and across episodes of one goal. Profiled on the
IL policy, the action encoder was ~41 % of a rollout's time and the observation encoder ~46 %.

What is cached: the encoder's last hidden states of one sequence, *unpadded* ([length, H]), keyed
by the exact token ids (and token types) of that sequence, so every processor setting (max
lengths, truncation side, preprocessing, added tokens) is part of the key. Entries are also keyed
by the autocast mode (bf16 or not) and the encoder's attention kernel. Observations and actions
have separate LRU stores, each bounded in entries and in bytes (observations are ~20x larger and
rarely recur, so they must not evict the actions).

When it is used: only in eval mode with gradients off (`ActionScorerModel.score` / ``act`` run
under ``torch.inference_mode``). In train mode, or with grad enabled, the model never reads or
writes the cache (dropout would make an encoding depend on the call, and cached states carry no
graph); `stats` counts such calls as ``bypassed``.

Invalidation: before each use the cache compares a fingerprint of the model with the one its
entries were made under, and drops everything when it differs. The fingerprint is

* the sum of the version counters (``tensor._version``) of all parameters and buffers: every
  in-place write through the tensor bumps it, which covers optimizer steps (SGD, Adam/AdamW in
  their for-loop, foreach and fused forms), ``load_state_dict`` (it ``copy_``\\ s into the
  parameters under ``no_grad``) and any ``with torch.no_grad(): p.add_(...)``;
* the identity and storage address (``id``, ``data_ptr``) of each of them: replacing a parameter
  (``load_state_dict(assign=True)``, ``resize_token_embeddings``, ``p.data = ...``) or moving the
  model (``.to(device/dtype)``) changes them;
* the parameters' dtype and device, and the values of a probe: every element of the small
  tensors (biases, LayerNorms: ~30k values for MiniLM) and 8 spread elements of each large one.
  Version counters do not see everything: the *fused* optimizers (``AdamW(fused=True)``, the
  fastest on CPU; torch 2.13) update parameters without bumping them, and writes through
  ``p.data`` (PEFT's adapter merge) bypass them. A training step moves the biases and LayerNorms
  of every layer it trains, so the probe sees those steps; a merge or a copy moves every element.

It costs ~1-2 ms per call for MiniLM (~100 tensors), against ~100 ms for a forward pass. A write
that bypasses the version counter and leaves every small tensor and every probed element of the
large ones unchanged (say, a fused step that trains only the word embeddings) is not seen: code
doing that must call `EncodingCache.clear` (or ``model.clear_encoding_cache()``).

Equality with the uncached path: the cached path feeds the head the same token states, re-padded
into a batch, so scores equal the uncached ``score`` up to float rounding (the tests check 1e-5
and identical argmax on real pages; with a trained MiniLM head whose log-probs span ~12 nats the
largest difference seen was 4.6e-5, mean 2e-6, exactly what the uncached path itself shows between
a page scored alone and in a batch of 8). They are not bit-identical because the encoder
ran on a different batch: other sequences, another padded length, so other matmul shapes, and
BLAS/oneDNN pick blockings and summation orders by shape. Padded positions never matter: they are
masked to an exact zero weight in the head, whatever their states (zeros here, encoder outputs of
pad tokens in the uncached path). Under bf16 autocast the same holds with bf16 rounding (larger,
~1e-2), and the attention kernel can differ too: the uncached path switches small bf16 encoder
calls to ``config.bf16_attn_implementation`` (eager), the cached path keeps the encoder's SDPA
(faster for its groups).

Cache misses of one call are encoded together, sorted by length and cut into groups of at most
``max_tokens_per_batch`` padded tokens (less padding than one batch of every page of a vector-env
step, whose lengths range from ~100 to 384+ tokens).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch
from torch import nn

MiB = 1 << 20
# model_fingerprint reads tensors up to this size in full, and this many elements of larger ones
PROBE_WHOLE_TENSOR_MAX = 4096
PROBES_PER_TENSOR = 8


@dataclass
class StoreStats:
    """Counts of one store (observations or actions); ``hits + misses`` = sequences looked up."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0


@dataclass
class CacheStats:
    """What the cache did since it was made (or since `EncodingCache.reset_stats`)."""

    observations: StoreStats = field(default_factory=StoreStats)
    actions: StoreStats = field(default_factory=StoreStats)
    invalidations: int = 0  # times the model's weights (or device/dtype) changed and the cache was dropped
    bypassed: int = 0  # calls in train mode / with grad enabled, which never use the cache
    encoded_tokens: int = 0  # real (unpadded) tokens the encoder ran on for cache misses
    padded_tokens: int = 0  # tokens including padding in those miss batches

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("observations", "actions"):
            s: StoreStats = getattr(self, kind)
            out[kind] = {"hits": s.hits, "misses": s.misses, "evictions": s.evictions, "hit_rate": round(s.hit_rate, 4)}
        out.update(invalidations=self.invalidations, bypassed=self.bypassed,
                   encoded_tokens=self.encoded_tokens, padded_tokens=self.padded_tokens)
        return out


class LRUStore:
    """An LRU map key -> tensor bounded in entries and in bytes (either bound may be None)."""

    def __init__(self, max_entries: int | None, max_bytes: int | None):
        if max_entries is not None and max_entries < 0:
            raise ValueError(f"max_entries must be >= 0 or None, got {max_entries}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self.nbytes = 0
        self.stats = StoreStats()

    @property
    def enabled(self) -> bool:
        return self.max_entries != 0 and self.max_bytes != 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def get(self, key: Hashable) -> torch.Tensor | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if not self.enabled or (self.max_bytes is not None and size > self.max_bytes):
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.nbytes -= old.numel() * old.element_size()
        self._data[key] = value
        self.nbytes += size
        while (self.max_entries is not None and len(self._data) > self.max_entries) or (
            self.max_bytes is not None and self.nbytes > self.max_bytes
        ):
            _, dropped = self._data.popitem(last=False)
            self.nbytes -= dropped.numel() * dropped.element_size()
            self.stats.evictions += 1

    def clear(self) -> None:
        self._data.clear()
        self.nbytes = 0


def model_fingerprint(model: nn.Module) -> tuple:
    """What the cached encodings of ``model`` depend on besides the token ids; see the module
    docstring. Cheap (one pass over the parameters and buffers, one gather for the probes)."""
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    version = sum(t._version for t in tensors)
    layout = tuple((id(t), t.data_ptr(), t.dtype, t.device) for t in tensors)
    probes = []
    for t in tensors:
        if t.is_floating_point() and t.numel():
            flat = t.detach().reshape(-1)  # detach shares the storage; no copy for contiguous params
            n = flat.numel()
            if n <= PROBE_WHOLE_TENSOR_MAX:  # biases, LayerNorms, small heads: every element
                probes.append(flat)
            else:  # large matrices: PROBES_PER_TENSOR elements spread over the tensor
                probes.append(flat[torch.linspace(0, n - 1, PROBES_PER_TENSOR).long()])
    probe = torch.cat([p.float() for p in probes]).cpu() if probes else torch.zeros(0)
    return version, layout, probe.numpy().tobytes()


class EncodingCache:
    """LRU caches of encoder token states for observations and actions; see the module docstring.

    Args:
        max_action_entries / max_action_bytes: bounds of the action store (None: unbounded).
        max_observation_entries / max_observation_bytes: bounds of the observation store; 0
            disables caching observations (they are still encoded in length-sorted groups).
        max_tokens_per_batch: padded tokens per encoder call for the misses of one scoring call.
        call_overhead_tokens: the fixed cost of one encoder call, in tokens, that `plan_groups`
            weighs against padding when it cuts the misses into length-sorted groups. None: 64 in
            fp32 and 256 under bf16 autocast (best of 0/64/128/256/one group for 8-page steps of
            real pages with MiniLM, one thread: bf16 tokens are ~3x cheaper, so a call's fixed
            cost is worth more of them).

    MiniLM (hidden 384, fp32) stores 1.5 KB per token: an action of ~12 tokens is ~18 KB, a page
    of ~310 tokens ~0.5 MB. The defaults (64 MiB of actions, 128 MiB of pages) hold ~3,500
    actions and ~270 typical pages per model.

    Use: ``model.enable_encoding_cache()`` (then `ActionScorerModel.score`/``act`` use it), or
    ``model.score(..., cache=EncodingCache())`` for one call. One cache may serve several models;
    switching model invalidates it (different parameters, different fingerprint).
    """

    def __init__(
        self,
        *,
        max_action_entries: int | None = 100_000,
        max_action_bytes: int | None = 64 * MiB,
        max_observation_entries: int | None = 10_000,
        max_observation_bytes: int | None = 128 * MiB,
        max_tokens_per_batch: int = 8192,
        call_overhead_tokens: float | None = None,
    ):
        if max_tokens_per_batch < 1:
            raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
        self.observations = LRUStore(max_observation_entries, max_observation_bytes)
        self.actions = LRUStore(max_action_entries, max_action_bytes)
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.call_overhead_tokens = None if call_overhead_tokens is None else float(call_overhead_tokens)
        self._fingerprint: tuple | None = None
        self._invalidations = 0
        self._bypassed = 0
        self._encoded_tokens = 0
        self._padded_tokens = 0

    # ------------------------------------------------------------------ bookkeeping
    @property
    def stats(self) -> CacheStats:
        return CacheStats(
            observations=self.observations.stats, actions=self.actions.stats, invalidations=self._invalidations,
            bypassed=self._bypassed, encoded_tokens=self._encoded_tokens, padded_tokens=self._padded_tokens,
        )

    def reset_stats(self) -> None:
        self.observations.stats = StoreStats()
        self.actions.stats = StoreStats()
        self._invalidations = self._bypassed = self._encoded_tokens = self._padded_tokens = 0

    @property
    def nbytes(self) -> int:
        return self.observations.nbytes + self.actions.nbytes

    def __len__(self) -> int:
        return len(self.observations) + len(self.actions)

    def __repr__(self) -> str:
        return (f"EncodingCache(observations={len(self.observations)}, actions={len(self.actions)}, "
                f"{self.nbytes / MiB:.1f} MiB, stats={self.stats.as_dict()})")

    def clear(self) -> None:
        """Drop every entry (the statistics stay)."""
        self.observations.clear()
        self.actions.clear()
        self._fingerprint = None

    def note_bypass(self) -> None:
        self._bypassed += 1

    def sync(self, model: nn.Module) -> bool:
        """Drop everything if ``model``'s fingerprint differs from the entries'; True if it did."""
        fp = model_fingerprint(model)
        if fp == self._fingerprint:
            return False
        had = self._fingerprint is not None and len(self) > 0
        self.clear()
        self._fingerprint = fp
        if had:
            self._invalidations += 1
        return had

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        kind: str,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        encode_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
        context: Hashable = None,
        hidden_size: int | None = None,
        low_precision: bool = False,
    ) -> list[torch.Tensor]:
        """Unpadded last hidden states ([length_i, H]) of each row of a padded batch.

        Rows found in the ``kind`` store ("observations" or "actions") are reused; the others are
        encoded by ``encode_fn(ids, mask, types) -> [b, L, H]`` in length-sorted groups
        (`plan_groups`, whose cost model uses ``hidden_size``, and ``low_precision`` for the default
        call overhead) and stored.
        ``context`` is part of every key (the autocast mode, the attention kernel). The caller
        must have called `sync` with the model first. Rows are assumed right-padded (BERT
        tokenisers here pad on the right; the processor does).
        """
        store: LRUStore = getattr(self, kind)
        lengths = attention_mask.sum(1).tolist()
        ids_cpu = input_ids.cpu()
        types_cpu = token_type_ids.cpu() if token_type_ids is not None else None
        keys: list[Hashable] = []
        for i, n in enumerate(lengths):
            ids = ids_cpu[i, :n].numpy().tobytes()
            types = types_cpu[i, :n].numpy().tobytes() if types_cpu is not None else b""
            keys.append((context, ids, types))
        out: list[torch.Tensor | None] = [None] * len(keys)
        missing: dict[Hashable, list[int]] = {}
        for i, key in enumerate(keys):
            hit = store.get(key)
            if hit is not None:
                out[i] = hit
                store.stats.hits += 1
            else:
                store.stats.misses += 1
                missing.setdefault(key, []).append(i)
        if missing:
            first_rows = [rows[0] for rows in missing.values()]
            overhead = self.call_overhead_tokens
            if overhead is None:
                overhead = 256.0 if low_precision else 64.0
            states = self._encode_rows(first_rows, lengths, input_ids, attention_mask, token_type_ids, encode_fn,
                                       hidden_size, overhead)
            for (key, rows), state in zip(missing.items(), states):
                store.put(key, state)
                for i in rows:
                    out[i] = state
        return out  # type: ignore[return-value]

    def _encode_rows(self, rows, lengths, input_ids, attention_mask, token_type_ids, encode_fn, hidden_size, overhead) -> list[torch.Tensor]:
        """Encode ``rows`` (indices into the batch) in length-sorted groups (`plan_groups`); returns
        each row's [length, H] states (copies, so a stored entry does not keep its batch alive)."""
        order = sorted(range(len(rows)), key=lambda j: -lengths[rows[j]])
        sorted_lengths = [lengths[rows[j]] for j in order]
        result: list[torch.Tensor | None] = [None] * len(rows)
        for start, stop in plan_groups(sorted_lengths, self.max_tokens_per_batch, overhead, hidden_size):
            group = order[start:stop]
            width = sorted_lengths[start]  # the longest of the group
            idx = torch.tensor([rows[j] for j in group], device=input_ids.device)
            ids = input_ids.index_select(0, idx)[:, :width]
            mask = attention_mask.index_select(0, idx)[:, :width]
            types = token_type_ids.index_select(0, idx)[:, :width] if token_type_ids is not None else None
            hidden = encode_fn(ids, mask, types)
            self._padded_tokens += len(group) * width
            for k, j in enumerate(group):
                n = lengths[rows[j]]
                self._encoded_tokens += n
                result[j] = hidden[k, :n].clone()
        return result  # type: ignore[return-value]


def plan_groups(
    lengths: list[int], max_tokens: int, overhead_tokens: float = 64.0, hidden_size: int | None = None
) -> list[tuple[int, int]]:
    """Cut sequences sorted by length (longest first) into encoder calls ``[start, stop)``.

    Minimises the estimated cost: per call ``overhead_tokens`` plus, for ``size`` sequences padded
    to the group's longest ``width``, ``size * width * (1 + width / (3 * hidden_size))`` (a BERT
    layer costs ~12 H^2 per token in its linear layers and ~4 L H in attention), with at most
    ``max_tokens`` padded tokens per call (one longer sequence still gets its own call). Exact
    dynamic programming over the points where the length changes.
    """
    n = len(lengths)
    if n == 0:
        return []
    quad = 1.0 / (3.0 * hidden_size) if hidden_size else 0.0
    # candidate cut points: the first index of each run of equal lengths, and the end
    cuts = [0] + [i for i in range(1, n) if lengths[i] != lengths[i - 1]] + [n]
    best = {0: (0.0, -1)}  # cut index -> (cost, previous cut)
    for b in range(1, len(cuts)):
        stop = cuts[b]
        best_cost, best_prev = float("inf"), -1
        for a in range(b - 1, -1, -1):
            start = cuts[a]
            width = lengths[start]
            size = stop - start
            if size * width > max_tokens and b - a > 1:
                break  # longer groups only get bigger
            # a run of equal lengths longer than max_tokens allows is split evenly below
            calls = max(1, -(-size * width // max_tokens))
            cost = best[a][0] + calls * overhead_tokens + size * width * (1.0 + width * quad)
            if cost < best_cost:
                best_cost, best_prev = cost, a
        best[b] = (best_cost, best_prev)
    bounds: list[tuple[int, int]] = []
    b = len(cuts) - 1
    while b > 0:
        a = best[b][1]
        start, stop = cuts[a], cuts[b]
        per_call = max(1, max_tokens // max(lengths[start], 1))
        for s in range(start, stop, per_call):
            bounds.append((s, min(stop, s + per_call)))
        b = a
    return sorted(bounds)


def pad_states(states: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack unpadded [length_i, H] states into a zero-padded [n, length, H] batch."""
    hidden = states[0].shape[-1]
    out = states[0].new_zeros((len(states), length, hidden))
    for i, s in enumerate(states):
        out[i, : s.shape[0]] = s
    return out


__all__ = ["CacheStats", "EncodingCache", "LRUStore", "StoreStats", "model_fingerprint", "pad_states", "plan_groups"]
