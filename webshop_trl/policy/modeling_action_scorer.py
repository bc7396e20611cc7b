"""`ActionScorerModel`: a BERT policy that scores the candidate actions of a WebShop page.

Design (WebShop's choice model, spec section 5.4, re-implemented):

1. One shared text encoder (BERT) reads the observation once and each candidate action once. A
   cross-encoder would re-read the 512-token page for each of the K candidates; this reads
   ``Lo + K * La`` tokens instead of ``K * (Lo + La)``, the difference between ~70 ms and ~700 ms
   per page on a 2-core CPU.
2. A light interaction head (`ActionObservationAttention`): the action tokens attend over the
   observation tokens with a BiDAF trilinear score, each action token becomes
   ``[c, a, c*a, b*a]`` (its state c, the attended observation a, and b, a summary of the action
   weighted by how strongly each of its tokens matched the page), then Linear -> ReLU -> mean over
   the action's real tokens -> Linear -> one logit.
3. pi(a|s) is the softmax of the logits over the page's candidates. Pages in a batch may have
   different numbers of candidates: logits come back padded to [B, Kmax] with -inf in the
   padding, so ``softmax``/``log_softmax`` over the last dim are already the policy.
4. A value head on the observation's [CLS] state (Linear -> LeakyReLU -> Linear) for PPO.

The head works on the padded [B, Kmax * La] layout so the attention is one batched matmul per
page against that page's observation, without copying the observation K times.
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, GenerationConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from webshop_trl.policy.configuration_action_scorer import ActionScorerConfig
from webshop_trl.policy.encoding_cache import EncodingCache, pad_states
from webshop_trl.policy.hub import resolve_encoder_name_or_path
from webshop_trl.policy.processing_action_scorer import IGNORE_INDEX, ActionScoringProcessor


@dataclass
class ActionScorerOutput(ModelOutput):
    """Output of `ActionScorerModel.forward`.

    Attributes:
        loss: mean cross-entropy of ``labels`` (when given), i.e. -log pi(chosen|s).
        logits: [B, Kmax] score of each candidate; -inf where a page has fewer candidates.
        log_probs: [B, Kmax] log pi(a|s) (log-softmax of ``logits`` per page); -inf in padding.
        candidate_mask: [B, Kmax] True for real candidates.
        flat_log_probs: [N] log pi(a|s) in the input's candidate order (page-major), handy for
            gathering chosen/rejected actions in DPO.
        state_values: [B] state values V(s) (when the model has a value head and values are
            asked for). Not called ``values``: a ModelOutput is a dict, and a field of that name
            hides ``dict.values``, which DDP's output scan calls (it crashed IL under DDP).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None
    candidate_mask: torch.Tensor | None = None
    flat_log_probs: torch.Tensor | None = None
    state_values: torch.Tensor | None = None


@dataclass
class ActOutput:
    """What `ActionScorerModel.act` chose for each page."""

    actions: list[str]
    indices: list[int]
    log_probs: torch.Tensor  # [B] log pi(chosen|s) under the untempered policy
    values: torch.Tensor | None = None  # [B]


class ActionObservationAttention(nn.Module):
    """BiDAF-style attention of action tokens (context) over observation tokens (memory).

    Score of action token i against observation token j:
    ``w_c . c_i + w_m . m_j + (c_i * s) . m_j`` with learned vectors w_c, w_m and s.
    Returns ``[c, a, c*a, b*a]`` per action token (4H features).
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.context_weight = nn.Linear(hidden_size, 1, bias=False)
        self.memory_weight = nn.Linear(hidden_size, 1, bias=False)
        self.scale = nn.Parameter(torch.empty(hidden_size))

    def forward(
        self,
        context: torch.Tensor,  # [B, K, La, H] action token states, grouped by page
        context_mask: torch.Tensor,  # [B, K, La] bool
        memory: torch.Tensor,  # [B, Lo, H] observation token states
        memory_mask: torch.Tensor,  # [B, Lo] bool
    ) -> torch.Tensor:
        B, K, La, H = context.shape
        flat = context.reshape(B, K * La, H)
        # trilinear scores, one bmm per page against its own observation: [B, K*La, Lo]
        scores = torch.bmm(flat * self.scale.to(flat.dtype), memory.transpose(1, 2))
        scores = scores + self.memory_weight(memory).transpose(1, 2) + self.context_weight(flat)
        # softmaxes in fp32: under bf16 autocast the masked softmax loses too much otherwise
        scores = scores.float()
        neg = torch.finfo(scores.dtype).min
        scores = scores.masked_fill(~memory_mask[:, None, :], neg)
        attended = torch.bmm(torch.softmax(scores, dim=-1).to(memory.dtype), memory)  # a: [B, K*La, H]
        # b: the action's tokens weighted by their best match on the page (max over memory)
        token_weight = scores.amax(dim=-1).view(B, K, La).masked_fill(~context_mask, neg)
        token_weight = torch.softmax(token_weight, dim=-1).to(context.dtype)
        summary = torch.einsum("bkl,bklh->bkh", token_weight, context)  # [B, K, H]
        attended = attended.view(B, K, La, H).to(context.dtype)
        return torch.cat([context, attended, context * attended, summary[:, :, None, :] * attended], dim=-1)


class ActionScorerPreTrainedModel(PreTrainedModel):
    config_class = ActionScorerConfig
    config: ActionScorerConfig
    base_model_prefix = "text_encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _keys_to_ignore_on_load_unexpected = [r"pooler\."]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The encoder is a PreTrainedModel and initialises itself; this covers the head.
        std = self.config.initializer_range
        if isinstance(module, ActionObservationAttention):
            # WebShop's bi-attention drew s from U(1/sqrt(H), 1) so the c*m term starts near a dot product
            init.uniform_(module.scale, 1.0 / module.hidden_size**0.5, 1.0)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)


class ActionScorerModel(ActionScorerPreTrainedModel):
    """Scores each candidate action of a WebShop page; pi(a|s) is the softmax over the candidates.

    Build it from a BERT checkpoint with `from_bert`, reload a saved one with `from_pretrained`
    (or `AutoModel.from_pretrained` once `webshop_trl.policy` is imported). The attached
    ``processor`` (an `ActionScoringProcessor`, saved next to the weights) is what `score` and
    `act` use to turn strings into tensors.

    Example::

        model = ActionScorerModel.from_bert()          # offline MiniLM-L6 unless a hub is reachable
        log_probs = model.score([obs], [["click[buy now]", "click[< prev]"]])[0]
        choice = model.act([obs], [candidates], greedy=True).actions[0]
    """

    def __init__(self, config: ActionScorerConfig):
        super().__init__(config)
        enc_cfg = config.text_encoder
        if getattr(enc_cfg, "_attn_implementation", None) is None:
            # SDPA: fused attention kernel; in fp32 on CPU ~15% faster than eager for 512-token
            # pages, and it never materialises the [B, heads, L, L] scores of a batch
            enc_cfg._attn_implementation = "sdpa"
        if config.encoder_dropout is not None:
            for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
                if hasattr(enc_cfg, key):
                    setattr(enc_cfg, key, float(config.encoder_dropout))
        self.text_encoder = _build_encoder(enc_cfg)
        hidden = int(enc_cfg.hidden_size)
        inner = int(config.interaction_hidden_size or hidden)
        self.interaction = ActionObservationAttention(hidden)
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.token_proj = nn.Linear(4 * hidden, inner)
        self.score_out = nn.Linear(inner, 1)
        if config.use_value_head:
            self.value_head = nn.Sequential(
                nn.Linear(hidden, config.value_hidden_size), nn.LeakyReLU(), nn.Linear(config.value_hidden_size, 1)
            )
        else:
            self.value_head = None
        # gradient checkpointing is delegated to the encoder, so it is supported iff the encoder does it
        self.supports_gradient_checkpointing = bool(getattr(self.text_encoder, "supports_gradient_checkpointing", False))
        self.processor: ActionScoringProcessor | None = None
        # reuse of encoder states across score/act calls at inference (enable_encoding_cache)
        self.encoding_cache: EncodingCache | None = None
        self.post_init()
        # TRL's trainers read generation_config (pad_token_id, ...) even for non-generative models.
        self.generation_config = GenerationConfig(pad_token_id=getattr(enc_cfg, "pad_token_id", None))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bert(
        cls,
        encoder_name_or_path: str | os.PathLike | None = None,
        *,
        config: ActionScorerConfig | None = None,
        add_webshop_tokens: bool = False,
        processor_kwargs: dict[str, Any] | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> "ActionScorerModel":
        """A new scorer whose encoder starts from a pretrained BERT checkpoint (head randomly initialised).

        Args:
            encoder_name_or_path: Hub id or folder; defaults to ``config.encoder_name_or_path``
                (itself defaulting to all-MiniLM-L6-v2, loaded from the offline package when no
                hub is reachable).
            config: head settings; its encoder architecture is replaced by the checkpoint's.
            add_webshop_tokens: add WebShop's [button]/[clicked button] markup tokens to the
                tokenizer and resize the embeddings (new rows start at the mean embedding).
            processor_kwargs: settings of the attached `ActionScoringProcessor` (max lengths, ...).
            encoder_kwargs: passed to ``AutoModel.from_pretrained`` (e.g. ``revision``, ``token``).
            **config_kwargs: `ActionScorerConfig` fields (``use_value_head``, ``bf16``, ...).
        """
        name = os.fspath(encoder_name_or_path) if encoder_name_or_path is not None else None
        if config is None:
            config = ActionScorerConfig(**({"encoder_name_or_path": name} if name else {}), text_encoder={"model_type": "bert"}, **config_kwargs)
        else:
            config = copy.deepcopy(config)
            for key, value in config_kwargs.items():
                setattr(config, key, value)
            config.validate_head()
        name = name or config.encoder_name_or_path
        path = resolve_encoder_name_or_path(name)
        encoder_kwargs = dict(encoder_kwargs or {})
        encoder_kwargs.setdefault("attn_implementation", "sdpa")
        pretrained = _load_pretrained_encoder(path, encoder_kwargs)
        config.encoder_name_or_path = name
        config.text_encoder = pretrained.config
        model = cls(config)
        missing, unexpected = model.text_encoder.load_state_dict(pretrained.state_dict(), strict=False)
        unexpected = [k for k in unexpected if not k.startswith("pooler.")]
        if missing or unexpected:
            raise ValueError(f"encoder checkpoint {name!r} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        del pretrained
        processor = ActionScoringProcessor.from_pretrained(path, **(processor_kwargs or {}))
        if add_webshop_tokens:
            processor.add_webshop_tokens()
        model.attach_processor(processor)
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, load_processor: bool = True, **kwargs):
        """`PreTrainedModel.from_pretrained`, plus the processor saved beside the weights (if any)."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if load_processor and pretrained_model_name_or_path is not None:
            try:
                model.processor = ActionScoringProcessor.from_pretrained(pretrained_model_name_or_path)
            except Exception:  # weights without tokenizer files: the caller attaches one
                model.processor = None
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save config + safetensors weights, and the attached processor's tokenizer/settings."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.processor is not None and kwargs.get("is_main_process", True):
            self.processor.save_pretrained(save_directory)

    def attach_processor(self, processor: ActionScoringProcessor) -> ActionScoringProcessor:
        """Use ``processor`` in `score`/`act`/`save_pretrained`; grows the embeddings if its vocab is larger."""
        if len(processor.tokenizer) > self.get_input_embeddings().num_embeddings:
            self.resize_token_embeddings(len(processor.tokenizer))
        self.processor = processor
        return processor

    # ------------------------------------------------------------------ HF plumbing
    def get_input_embeddings(self) -> nn.Module:
        return self.text_encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_encoder.set_input_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True) -> nn.Embedding:
        """Resize the encoder's word embeddings and record the new size in ``config.text_encoder``
        (so that `from_pretrained` rebuilds the right shape)."""
        emb = self.text_encoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.config.text_encoder.vocab_size = emb.num_embeddings
        return emb

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        action_input_ids: torch.Tensor | None = None,
        action_attention_mask: torch.Tensor | None = None,
        num_candidates: torch.Tensor | None = None,
        action_index: torch.Tensor | None = None,
        page_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_values: bool | None = None,
        bf16: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ActionScorerOutput | tuple:
        r"""Score every candidate of every page.

        Args:
            input_ids, attention_mask, token_type_ids: [B, Lo] observations (`ActionScoringProcessor`).
            action_input_ids, action_attention_mask: [U, La] the distinct candidate actions.
            num_candidates: [B] candidates per page (each >= 1); candidates are page-major.
            action_index: [N] row of each candidate in the action tensors (default: row n).
            page_index: [N] page of each candidate; only used when ``num_candidates`` is absent.
            labels: [B] index of the chosen candidate within its page (-100: ignore) -> ``loss``.
            return_values: compute V(s) (default: whenever the model has a value head).
            bf16: run under bfloat16 autocast (default: ``config.bf16``).
        """
        # keyword arguments that PEFT / Trainer pass through and that have no meaning here
        for key in ("output_attentions", "output_hidden_states", "num_items_in_batch"):
            kwargs.pop(key, None)
        if kwargs.pop("inputs_embeds", None) is not None:
            raise ValueError("ActionScorerModel takes input_ids, not inputs_embeds")
        if kwargs:
            raise TypeError(f"ActionScorerModel.forward got unexpected arguments {sorted(kwargs)}")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        use_bf16 = self.config.bf16 if bf16 is None else bf16
        num_candidates, action_index = self._check_inputs(
            input_ids, attention_mask, action_input_ids, action_attention_mask, num_candidates, action_index, page_index, labels
        )
        with _autocast(input_ids.device, use_bf16):
            out = self._score(
                input_ids, attention_mask, token_type_ids, action_input_ids, action_attention_mask,
                num_candidates, action_index, return_values, use_bf16,
            )
        if labels is not None:
            loss = F.cross_entropy(out.logits, labels.to(out.logits.device), ignore_index=IGNORE_INDEX)
            # a new output so that ``loss`` comes first in ``to_tuple()``, as in transformers models
            out = ActionScorerOutput(loss=loss, **{k: v for k, v in out.items()})
        if not return_dict:
            return out.to_tuple()
        return out

    # Largest attention map (sequences x L x L) for which the bf16 kernel override applies: one
    # 512-token page. Bigger batches keep SDPA, whose fused kernel never materialises the
    # [B, heads, L, L] scores (eager was ~2x slower and took GBs for 64 pages).
    BF16_ATTN_OVERRIDE_MAX_SCORES = 512 * 512

    def _encode(self, input_ids, attention_mask, token_type_ids=None, use_bf16: bool = False) -> torch.Tensor:
        """Last hidden states of the encoder, with the bf16 attention-kernel choice applied."""
        small = input_ids.shape[0] * input_ids.shape[1] ** 2 <= self.BF16_ATTN_OVERRIDE_MAX_SCORES
        with self._bf16_attention(input_ids.device, use_bf16 and small):
            return self.text_encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    @contextlib.contextmanager
    def _bf16_attention(self, device: torch.device, enabled: bool):
        """Switch the encoder to ``config.bf16_attn_implementation`` for one call on CPU."""
        impl = self.config.bf16_attn_implementation
        enc_cfg = self.text_encoder.config
        previous = enc_cfg._attn_implementation
        if not enabled or device.type != "cpu" or impl is None or impl == previous:
            yield
            return
        enc_cfg._attn_implementation = impl
        try:
            yield
        finally:
            enc_cfg._attn_implementation = previous

    def freeze_encoder_layers(self, num_layers: int, embeddings: bool = True) -> int:
        """Stop training the embeddings (if ``embeddings``) and the first ``num_layers`` encoder
        layers; returns the number of frozen parameters.

        Backpropagation then stops at the first trainable layer, which is the cheapest way to a
        faster CPU training step (with 3 of MiniLM's 6 layers frozen: ~1.5x). The word embeddings
        alone are half of MiniLM's parameters, so freezing them also halves AdamW's work.
        """
        layers = _encoder_layers(self.text_encoder)
        if not 0 <= num_layers <= len(layers):
            raise ValueError(f"num_layers must be in [0, {len(layers)}], got {num_layers}")
        frozen = 0
        modules = list(layers[:num_layers])
        if embeddings:
            modules.insert(0, _encoder_embeddings(self.text_encoder))
        for module in modules:
            for p in module.parameters():
                if p.requires_grad:
                    p.requires_grad_(False)
                    frozen += p.numel()
        return frozen

    def _check_inputs(self, input_ids, attention_mask, action_input_ids, action_attention_mask, num_candidates, action_index, page_index, labels):
        """Clear errors for malformed batches (an IndexError deep inside the head helps nobody)."""
        if input_ids is None or action_input_ids is None:
            raise ValueError("forward needs input_ids (observations) and action_input_ids (candidate actions)")
        if input_ids.dim() != 2 or action_input_ids.dim() != 2:
            raise ValueError(f"input_ids and action_input_ids must be 2-D, got {tuple(input_ids.shape)} and {tuple(action_input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}")
        if action_attention_mask is not None and action_attention_mask.shape != action_input_ids.shape:
            raise ValueError("action_attention_mask does not match action_input_ids")
        B = input_ids.shape[0]
        if num_candidates is None:
            if page_index is None:
                raise ValueError("forward needs num_candidates (or page_index) to know which candidates belong to which page")
            num_candidates = torch.bincount(page_index, minlength=B)
        num_candidates = torch.as_tensor(num_candidates, device=input_ids.device).long()
        if num_candidates.shape != (B,):
            raise ValueError(f"num_candidates must have one entry per page ({B}), got shape {tuple(num_candidates.shape)}")
        counts = num_candidates.tolist()
        if min(counts) < 1:
            raise ValueError(f"page {counts.index(min(counts))} has zero candidate actions; every page needs at least one")
        total = sum(counts)
        if action_index is None:
            if action_input_ids.shape[0] != total:
                raise ValueError(f"{action_input_ids.shape[0]} action rows for {total} candidates and no action_index")
            action_index = torch.arange(total, device=input_ids.device)
        elif action_index.shape != (total,):
            raise ValueError(f"action_index must have {total} entries (sum of num_candidates), got {tuple(action_index.shape)}")
        elif total and (int(action_index.min()) < 0 or int(action_index.max()) >= action_input_ids.shape[0]):
            raise ValueError("action_index points outside action_input_ids")
        vocab = self.get_input_embeddings().num_embeddings
        if int(input_ids.max()) >= vocab or int(action_input_ids.max()) >= vocab:
            raise ValueError(
                f"token id >= the embedding size {vocab}: the tokenizer has tokens the model does not "
                "(e.g. WebShop tokens added); call model.resize_token_embeddings(len(tokenizer))"
            )
        if labels is not None:
            if labels.shape != (B,):
                raise ValueError(f"labels must have one entry per page ({B}), got shape {tuple(labels.shape)}")
            lab = labels.tolist()
            for i, (y, k) in enumerate(zip(lab, counts)):
                if y != IGNORE_INDEX and not 0 <= y < k:
                    raise ValueError(f"labels[{i}]={y} is out of range for page {i} with {k} candidates")
        return num_candidates, action_index

    def _score(self, input_ids, attention_mask, token_type_ids, action_input_ids, action_attention_mask, num_candidates, action_index, return_values, use_bf16=False):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if action_attention_mask is None:
            action_attention_mask = torch.ones_like(action_input_ids)
        obs_states = self._encode(input_ids, attention_mask, token_type_ids, use_bf16)  # [B, Lo, H]
        act_states = self._encode(action_input_ids, action_attention_mask, None, use_bf16)  # [U, La, H]
        return self._head(obs_states, attention_mask, act_states, action_attention_mask, num_candidates, action_index, return_values)

    def _head(self, obs_states, attention_mask, act_states, action_attention_mask, num_candidates, action_index, return_values):
        """Everything after the encoder: the interaction head, the logits and the value head."""
        k_max = int(num_candidates.max())
        slots = torch.arange(k_max, device=attention_mask.device)
        candidate_mask = slots[None, :] < num_candidates[:, None]  # [B, Kmax]
        offsets = torch.cumsum(num_candidates, 0) - num_candidates  # first candidate of each page
        flat_pos = (offsets[:, None] + slots[None, :]).masked_fill(~candidate_mask, 0)  # [B, Kmax] -> candidate n
        rows = action_index[flat_pos]  # [B, Kmax] -> action row
        context = self.head_dropout(act_states[rows])  # [B, Kmax, La, H]
        context_mask = action_attention_mask[rows].bool() & candidate_mask[:, :, None]
        memory = self.head_dropout(obs_states)

        features = self.interaction(context, context_mask, memory, attention_mask.bool())
        token_hidden = F.relu(self.token_proj(features))  # [B, Kmax, La, inner]
        weights = context_mask.to(token_hidden.dtype)
        pooled = (token_hidden * weights[..., None]).sum(2) / weights.sum(2, keepdim=True).clamp(min=1.0)
        logits = self.score_out(pooled).squeeze(-1).float()  # [B, Kmax]
        logits = logits.masked_fill(~candidate_mask, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        flat_log_probs = log_probs[candidate_mask]  # page-major == input order

        values = self._state_values(obs_states, return_values)
        return ActionScorerOutput(
            logits=logits, log_probs=log_probs, candidate_mask=candidate_mask, flat_log_probs=flat_log_probs, state_values=values
        )

    def _state_values(self, obs_states: torch.Tensor, return_values: bool | None) -> torch.Tensor | None:
        """V(s) from the observation's [CLS] state when asked (default: when there is a value head)."""
        want_values = self.value_head is not None if return_values is None else return_values
        if not want_values:
            return None
        if self.value_head is None:
            raise ValueError("return_values=True but the model was built with use_value_head=False")
        return self.value_head(obs_states[:, 0]).squeeze(-1).float()

    def _head_packed(self, obs_states, attention_mask, act_states, action_attention_mask, num_candidates, action_index, return_values):
        """`_head` without the padding of the [B, Kmax, La] layout (inference only: no dropout).

        `_head` pads every page to the batch's most candidates and every action to the longest
        action (about 3x the real action tokens on rollout pages: item pages with 20-50 options
        next to results pages with 12). Here the real action tokens of each page are packed
        into one row ([B, T_page, H]) for the attention over its observation, and the per-token
        layer runs on the [T, 4H] real tokens only; the per-action softmax, summary and mean
        become segment operations. Same arithmetic as `_head`, so scores agree to float rounding
        (other matmul shapes, other summation order).
        """
        device = attention_mask.device
        att = self.interaction
        B = attention_mask.shape[0]
        n_cand = int(num_candidates.sum())
        page_of = torch.repeat_interleave(torch.arange(B, device=device), num_candidates)  # [N]
        cand_len = action_attention_mask.sum(1)[action_index]  # [N] tokens of each candidate
        cand_of = torch.repeat_interleave(torch.arange(n_cand, device=device), cand_len)  # [T]
        T = cand_of.shape[0]
        pos_in_cand = torch.arange(T, device=device) - (torch.cumsum(cand_len, 0) - cand_len)[cand_of]
        context = act_states[action_index[cand_of], pos_in_cand]  # [T, H]
        page_tok = page_of[cand_of]  # [T]
        per_page = torch.bincount(page_tok, minlength=B)
        pos_in_page = torch.arange(T, device=device) - (torch.cumsum(per_page, 0) - per_page)[page_tok]
        packed = context.new_zeros((B, int(per_page.max()), context.shape[-1]))
        packed[page_tok, pos_in_page] = context
        memory = obs_states
        # the trilinear scores and attention of ActionObservationAttention, on packed rows
        scores = torch.bmm(packed * att.scale.to(packed.dtype), memory.transpose(1, 2))
        scores = scores + att.memory_weight(memory).transpose(1, 2) + att.context_weight(packed)
        scores = scores.float()
        neg = torch.finfo(scores.dtype).min
        scores = scores.masked_fill(~attention_mask.bool()[:, None, :], neg)
        attended = torch.bmm(torch.softmax(scores, dim=-1).to(memory.dtype), memory)[page_tok, pos_in_page]  # [T, H]
        best = scores.amax(dim=-1)[page_tok, pos_in_page]  # [T] each token's best match on the page
        # softmax of the best matches over each candidate's tokens (segment softmax)
        top = torch.full((n_cand,), neg, device=device).scatter_reduce(0, cand_of, best, "amax", include_self=True)
        e = torch.exp(best - top[cand_of])
        weight = (e / torch.zeros(n_cand, device=device).index_add(0, cand_of, e)[cand_of]).to(context.dtype)
        weighted = weight[:, None] * context
        summary = weighted.new_zeros((n_cand, context.shape[-1])).index_add(0, cand_of, weighted)  # [N, H]
        attended = attended.to(context.dtype)
        features = torch.cat([context, attended, context * attended, summary[cand_of] * attended], dim=-1)
        token_hidden = F.relu(self.token_proj(features))  # [T, inner]
        pooled = token_hidden.new_zeros((n_cand, token_hidden.shape[-1])).index_add(0, cand_of, token_hidden)
        pooled = pooled / cand_len.clamp(min=1)[:, None].to(pooled.dtype)
        flat_logits = self.score_out(pooled).squeeze(-1).float()  # [N]
        k_max = int(num_candidates.max())
        candidate_mask = torch.arange(k_max, device=device)[None, :] < num_candidates[:, None]
        logits = torch.full((B, k_max), float("-inf"), device=device)
        logits[candidate_mask] = flat_logits  # page-major == input order
        log_probs = torch.log_softmax(logits, dim=-1)
        values = self._state_values(obs_states, return_values)
        return ActionScorerOutput(
            logits=logits, log_probs=log_probs, candidate_mask=candidate_mask,
            flat_log_probs=log_probs[candidate_mask], state_values=values,
        )

    # ------------------------------------------------------------------ encoding cache
    def enable_encoding_cache(self, cache: EncodingCache | None = None, **limits: Any) -> EncodingCache:
        """Let `score` and `act` reuse encoder states of recurring actions and pages (in eval
        mode, without grad; training never uses it). ``limits`` go to `EncodingCache` (entry and
        byte bounds). Returns the cache; a cache already enabled is kept unless one is passed."""
        if cache is None:
            cache = self.encoding_cache if self.encoding_cache is not None and not limits else EncodingCache(**limits)
        self.encoding_cache = cache
        return cache

    def disable_encoding_cache(self) -> None:
        """Stop using (and drop) the encoding cache."""
        self.encoding_cache = None

    def clear_encoding_cache(self) -> None:
        """Drop the cached encodings (needed only after weight writes that bypass the checks
        described in `webshop_trl.policy.encoding_cache`, e.g. through ``p.data``)."""
        if self.encoding_cache is not None:
            self.encoding_cache.clear()

    def _resolve_cache(self, cache: EncodingCache | bool | None) -> EncodingCache | None:
        """The cache a score/act call uses: ``cache`` if one is given, the model's own if None,
        none if False, and none (counted as bypassed) in train mode or with grad enabled."""
        if cache is False:
            return None
        if cache is None or cache is True:
            cache = self.encoding_cache
            if cache is None:
                return None
        if not isinstance(cache, EncodingCache):
            raise TypeError(f"cache must be an EncodingCache, True, False or None, got {type(cache).__name__}")
        if self.training or self.text_encoder.training or torch.is_grad_enabled():
            cache.note_bypass()
            return None
        return cache

    def _forward_cached(self, cache: EncodingCache, input_ids, attention_mask, token_type_ids, action_input_ids,
                        action_attention_mask, num_candidates, action_index, page_index=None, bf16=None,
                        return_values=None) -> ActionScorerOutput:
        """`forward` (inference only) with encoder states taken from / put into ``cache``."""
        use_bf16 = self.config.bf16 if bf16 is None else bf16
        num_candidates, action_index = self._check_inputs(
            input_ids, attention_mask, action_input_ids, action_attention_mask, num_candidates, action_index, page_index, None
        )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if action_attention_mask is None:
            action_attention_mask = torch.ones_like(action_input_ids)
        cache.sync(self)
        # what else changes the encoder's output for the same ids: autocast and the attention kernel
        context = (bool(use_bf16), self.text_encoder.config._attn_implementation)

        def encode(ids, mask, types):
            # the encoder's own kernel (SDPA), also under bf16: the eager override of `_encode` was
            # slower for these length-sorted groups (one 300-token page: 170 against 116 us/token)
            return self._encode(ids, mask, types, use_bf16=False)

        with _autocast(input_ids.device, use_bf16):
            hidden = int(self.config.text_encoder.hidden_size)
            low = bool(use_bf16)
            obs = cache.encode("observations", input_ids, attention_mask, token_type_ids, encode, context, hidden, low)
            acts = cache.encode("actions", action_input_ids, action_attention_mask, None, encode, context, hidden, low)
            obs_states = pad_states(obs, input_ids.shape[1])
            act_states = pad_states(acts, action_input_ids.shape[1])
            return self._head_packed(obs_states, attention_mask, act_states, action_attention_mask, num_candidates,
                                     action_index, return_values)

    def cached_forward(self, cache: EncodingCache | bool | None = None, bf16: bool | None = None,
                       return_values: bool | None = None, **batch: torch.Tensor) -> ActionScorerOutput:
        """`forward` on a processor batch, with the encoding cache when it may be used (eval
        mode, grad off; ``cache`` as in `score`), else plain `forward`. For rollout loops that
        build their own batches (e.g. PPO's, under ``torch.no_grad``). No ``labels``/loss."""
        if "labels" in batch:
            raise ValueError("cached_forward computes no loss: call forward(...) with labels")
        return self._run(batch, bf16, return_values, self._resolve_cache(cache))

    def _run(self, batch: dict[str, torch.Tensor], bf16, return_values, cache: EncodingCache | None) -> ActionScorerOutput:
        if cache is None:
            return self(**batch, bf16=bf16, return_values=return_values)
        return self._forward_cached(cache, **batch, bf16=bf16, return_values=return_values)

    # ------------------------------------------------------------------ convenience API
    def _require_processor(self, processor: ActionScoringProcessor | None) -> ActionScoringProcessor:
        processor = processor or self.processor
        if processor is None:
            raise ValueError(
                "no processor attached: pass processor=ActionScoringProcessor.from_pretrained(...) or call "
                "model.attach_processor(...) (from_bert and from_pretrained of a saved folder attach one)"
            )
        return processor

    @torch.inference_mode()
    def score(
        self,
        observations: Sequence[str],
        candidates: Sequence[Sequence[str]],
        instructions: Sequence[str | None] | None = None,
        *,
        processor: ActionScoringProcessor | None = None,
        bf16: bool | None = None,
        batch_size: int | None = None,
        return_values: bool = False,
        cache: EncodingCache | bool | None = None,
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """log pi(a|s) for each candidate of each page: a list of 1-D float tensors (on CPU), one
        per page, in the given candidate order. With ``return_values=True`` also V(s) as a [B]
        tensor. ``batch_size`` pages are scored per forward pass (default: all at once); with
        chunks, pages of similar length go together (less padding), results keep the input order.
        Uses the model's current mode: call ``model.eval()`` for deterministic scores.

        ``cache``: an `EncodingCache` to reuse encoder states of actions and pages seen before
        (None: the model's own, if `enable_encoding_cache` was called; False: none). Used in eval
        mode only; scores equal the uncached ones up to float rounding (see `encoding_cache`)."""
        processor = self._require_processor(processor)
        cache = self._resolve_cache(cache)
        processor._validate(observations, candidates, instructions, None)
        n = len(observations)
        step = n if batch_size is None else batch_size
        if step < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = list(range(n))
        if step < n:  # character length is a good enough proxy for token length to bucket by
            order.sort(key=lambda i: len(observations[i]))
        per_page: list[torch.Tensor | None] = [None] * n
        values = torch.zeros(n)
        for start in range(0, n, step):
            idx = order[start:start + step]
            batch = processor(
                [observations[i] for i in idx],
                [candidates[i] for i in idx],
                [instructions[i] for i in idx] if instructions is not None else None,
            )
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = self._run(batch, bf16, return_values, cache)
            lp = out.log_probs.float().cpu()
            for row, (i, k) in enumerate(zip(idx, batch["num_candidates"].tolist())):
                per_page[i] = lp[row, :k].clone()
            if return_values:
                values[idx] = out.state_values.float().cpu()
        if return_values:
            return per_page, values
        return per_page

    @torch.inference_mode()
    def act(
        self,
        observations: Sequence[str],
        candidates: Sequence[Sequence[str]],
        instructions: Sequence[str | None] | None = None,
        *,
        greedy: bool = False,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        processor: ActionScoringProcessor | None = None,
        bf16: bool | None = None,
        return_values: bool = False,
        cache: EncodingCache | bool | None = None,
    ) -> ActOutput:
        """Choose one candidate per page: the argmax (``greedy=True``) or a sample from
        softmax(logits / temperature). ``log_probs`` are log pi(chosen|s) of the untempered policy
        (what a PPO ratio needs at temperature 1). ``cache`` as in `score`."""
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
        processor = self._require_processor(processor)
        cache = self._resolve_cache(cache)
        processor._validate(observations, candidates, instructions, None)
        batch = processor(observations, candidates, instructions)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = self._run(batch, bf16, return_values, cache)
        log_probs = out.log_probs.float()
        if greedy:
            chosen = log_probs.argmax(dim=-1)
        else:
            probs = torch.softmax(out.logits.float() / temperature, dim=-1)
            chosen = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(log_probs.device)
        indices = chosen.tolist()
        return ActOutput(
            actions=[candidates[i][j] for i, j in enumerate(indices)],
            indices=indices,
            log_probs=log_probs.gather(1, chosen[:, None]).squeeze(1).cpu(),
            values=out.state_values.float().cpu() if out.state_values is not None else None,
        )


def _autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on the inputs' device (CPU or CUDA), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
        module = encoder
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the layer list of {type(encoder).__name__}")


def _encoder_embeddings(encoder: nn.Module) -> nn.Module:
    return getattr(encoder, "embeddings", None) or encoder.get_input_embeddings()


def _build_encoder(encoder_config) -> PreTrainedModel:
    """A randomly initialised encoder for ``encoder_config``, without BERT's pooler (unused here:
    an unused parameter makes DDP fail and wastes optimizer time)."""
    try:
        return AutoModel.from_config(encoder_config, add_pooling_layer=False)
    except TypeError:  # encoders without a pooler option
        return AutoModel.from_config(encoder_config)


def _load_pretrained_encoder(path: str, kwargs: dict[str, Any]) -> PreTrainedModel:
    """The checkpoint as its own AutoModel (pooler included, so transformers' load report only
    flags real mismatches); `from_bert` copies its weights minus the pooler."""
    return AutoModel.from_pretrained(path, **kwargs)


__all__ = ["ActionScorerModel", "ActionScorerPreTrainedModel", "ActionScorerOutput", "ActOutput", "ActionObservationAttention"]
