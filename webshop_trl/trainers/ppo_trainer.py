"""`PPOTrainer`: PPO for the WebShop action-scoring policy, our own loop on `accelerate`.

TRL 1.16 ships no PPO, and its PPO was built around token generation; here pi(a|s) is a softmax
over the K candidate actions of a page, so entropy and KL to the reference are exact sums over the
candidates. One update (CleanRL's ppo.py shape):

1. **Rollout**: ``num_steps`` steps of ``num_envs`` WebShop sessions (a `WebShopVectorEnv` built
   inside each process, never before a fork). On a click page the policy samples a click from
   softmax over the page's click actions; on a search page the *search policy* (the instruction,
   or a human query) searches. Each step is one batched forward pass over the N pages (log-probs
   and V(s)); the reference's log-probs of the decision pages are stored with them.
2. **Returns**: GAE(gamma, lambda) over environment steps (`compute_gae`).
3. **Optimisation**: ``num_epochs`` x ``num_minibatches`` steps on the loss
   ``pg + vf_coef * v - ent_coef * H + kl_coef * KL + il_coef * IL`` (see `PPOConfig`), with
   ``accelerator.backward`` and gradient-norm clipping. The IL pages (demonstrations) go through
   the same forward pass as the rollout pages (one DDP forward per backward).

Design decisions:

* **Search steps** are environment transitions without a policy decision. They stay in the
  rollout as ordinary steps for the *returns*: gamma discounts per environment step, search steps
  included (as in WebShop's RL, where a search is a step too), and the critic is trained on search
  pages as well (V(search page) is what bootstraps a rollout that ends on one). Their action is
  fixed by the search policy (one candidate, log pi = 0), so they carry no policy, entropy, KL or
  clip term: those are averaged over *decision steps* only (click pages with at least 2
  candidates). A click page with a single candidate is likewise no decision.
* **Rewards**: WebShop's reward at the purchase times ``reward_scale`` (10 = WebShop's RL
  wrapper), 0 on every other step.
* **Truncation** at the step limit: by default the end of the episode with no bootstrap (return
  0 after it), as WebShop's RL masks returns by done and as evaluation scores a cut episode;
  ``bootstrap_truncated`` adds gamma * V(last page) to the cut step's reward instead.
* **Reference**: with LoRA (a `PeftModel`) the base with the adapter disabled; otherwise a frozen
  copy of the initial policy (not of a resumed checkpoint).
* **Resume**: ``accelerator.save_state`` holds model, optimiser and RNG states; trainer_state.json
  the update count. Environments start fresh episodes after a resume (sessions are not saved), so
  a resumed run continues the update count, optimiser and RNG streams but is not bit-identical to
  an uninterrupted one. A checkpoint is written into ``tmp-checkpoint-<n>`` and renamed to
  ``checkpoint-<n>`` when complete, so a run killed while saving keeps the previous one loadable;
  metrics.jsonl lines of updates after the resumed checkpoint (redone after the resume) are
  dropped, so each update is logged once.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from webshop_trl.datasets.decision_steps import click_candidates
from webshop_trl.paths import fsync_dir, write_text_atomic
from webshop_trl.trainers.ppo_config import PPOConfig, PPOScriptArguments
from webshop_trl.trainers.ppo_core import clipped_policy_loss, compute_gae, exact_entropy, exact_kl, pad_log_probs

logger = logging.getLogger("webshop_trl.ppo")

CHECKPOINT_PREFIX = "checkpoint-"
TMP_PREFIX = "tmp-"
STATE_DIR = "accelerate_state"
TRAINER_STATE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
ADAPTER_DIR = "adapter"


def _is_peft(model) -> bool:
    from accelerate.utils import is_peft_model

    return is_peft_model(model)


class PPOTrainer:
    """PPO on the WebShop environment; see the module docstring.

    Args:
        model: the policy (`ActionScorerModel` with a value head, or a `PeftModel` around one).
        config: `PPOConfig`.
        script_args: `PPOScriptArguments` (the environment); ignored where ``env_config`` is given.
        ref_model: an explicit reference policy; default: adapter-off base (PEFT) or a frozen copy.
        il_dataset: demonstration decision steps (rows with observation, candidates, label) for the
            IL term; needed when ``config.il_coef > 0``.
        env_config: a `WebShopConfig` (default: built from ``script_args``).
        processor: the `ActionScoringProcessor` (default: the model's).
        accelerator: an `accelerate.Accelerator` (default: one built from the config).
    """

    def __init__(
        self,
        model,
        config: PPOConfig,
        script_args: PPOScriptArguments | None = None,
        *,
        ref_model=None,
        il_dataset=None,
        env_config=None,
        processor=None,
        accelerator=None,
    ):
        from accelerate import Accelerator

        self.config = config
        self.script_args = script_args or PPOScriptArguments()
        if accelerator is None:
            log_with = [r for r in (config.report_to or []) if r != "none"] or None
            accelerator = Accelerator(
                cpu=config.use_cpu, mixed_precision="bf16" if config.bf16 else "no", log_with=log_with,
                project_dir=config.output_dir,
            )
        self.accelerator = accelerator
        self.processor = processor or getattr(model, "processor", None)
        if self.processor is None:
            raise ValueError("the policy has no processor attached (model.attach_processor(...))")
        base = model.get_base_model() if _is_peft(model) else model
        if getattr(base, "value_head", None) is None:
            raise ValueError("PPO needs a policy with a value head (ActionScorerConfig.use_value_head=True)")
        if config.il_coef > 0 and il_dataset is None:
            raise ValueError("il_coef > 0 needs demonstrations (il_dataset_paths)")
        self.il_dataset = il_dataset
        self.use_adapter_off_reference = ref_model is None and _is_peft(model)
        if ref_model is None and not self.use_adapter_off_reference:
            ref_model = copy.deepcopy(model)
        if ref_model is not None:
            ref_model.requires_grad_(False)
            ref_model.eval()
            ref_model.to(accelerator.device)
        self.ref_model = ref_model

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=config.adam_epsilon, weight_decay=config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.env_config = env_config
        self.update = 0  # PPO updates done
        self.env_steps = 0  # environment steps, all processes
        self.episodes = 0  # finished episodes, all processes
        self.history: list[dict[str, Any]] = []
        self.search_policy = None
        self.envs = None

    # ------------------------------------------------------------------ helpers
    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def _env_config(self):
        from webshop_trl.envs import WebShopConfig

        if self.env_config is not None:
            return self.env_config
        s = self.script_args
        return WebShopConfig(
            data_dir=s.data_dir, num_products=s.num_products, observation_mode=s.observation_mode,
            step_limit=s.step_limit, search_engine=s.search_engine, seed=self.config.seed,
        )

    def _forward(self, model, observations: Sequence[str], candidates: Sequence[Sequence[str]], instructions=None, return_values=True):
        batch = self.processor(list(observations), [list(c) for c in candidates], instructions)
        batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
        return model(**batch, return_values=return_values, bf16=self.config.bf16)

    @torch.no_grad()
    def _reference_log_probs(self, observations, candidates, instructions) -> torch.Tensor:
        if self.use_adapter_off_reference:
            policy = self.unwrapped
            was_training = policy.training
            policy.eval()
            with policy.disable_adapter():
                out = self._forward(policy, observations, candidates, instructions, return_values=False)
            policy.train(was_training)
        else:
            out = self._forward(self.ref_model, observations, candidates, instructions, return_values=False)
        return out.log_probs.float()

    def _pages(self, observations, infos):
        """(candidates, is_decision, instruction) of each page; search pages get the search action."""
        n = len(observations)
        candidates: list[list[str]] = []
        decision: list[bool] = []
        instructions = [str(infos["instruction"][i] or "") for i in range(n)]
        search_idx = []
        for i in range(n):
            actions = list(infos["available_actions"][i] or [])
            clicks = click_candidates(actions)
            if infos["page_type"][i] == "search" or (not clicks and "search[<query>]" in actions):
                search_idx.append(i)
                candidates.append([])
                decision.append(False)
            else:
                candidates.append(clicks or ["click[back to search]"])
                decision.append(len(clicks) > 1)
        if search_idx:
            queries = self.search_policy.queries([instructions[i] for i in search_idx], [random.Random(0)] * len(search_idx))
            for i, q in zip(search_idx, queries):
                candidates[i] = [f"search[{q}]"]
        # the processor reads the instruction from the page, as PolicyAgent (evaluation) does
        return candidates, decision, [None] * n

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def rollout(self) -> dict[str, Any]:
        """``num_steps`` steps of every environment with the current policy; the transitions."""
        cfg = self.config
        T, N = cfg.num_steps, cfg.num_envs
        policy = self.unwrapped
        was_training = policy.training
        policy.eval()
        buf: dict[str, Any] = {
            "observations": [], "candidates": [], "instructions": [], "ref_log_probs": [],
            "actions": torch.zeros(T, N, dtype=torch.long), "log_probs": torch.zeros(T, N), "values": torch.zeros(T, N),
            "rewards": torch.zeros(T, N), "ends": torch.zeros(T, N), "decision": torch.zeros(T, N),
        }
        episode_rewards: list[float] = []
        for t in range(T):
            cands, decision, instructions = self._pages(self.obs, self.infos)
            out = self._forward(policy, self.obs, cands, instructions)
            log_probs = out.log_probs.float()
            probs = log_probs.exp().cpu()
            actions = torch.multinomial(probs.nan_to_num(0.0), 1).squeeze(1)
            chosen = log_probs.gather(1, actions.to(log_probs.device)[:, None]).squeeze(1).cpu()
            # the reference on decision pages only (elsewhere KL is 0: one candidate, or no decision)
            ref_rows = [torch.zeros(len(c)) for c in cands]
            dec_idx = [i for i in range(N) if decision[i]]
            if dec_idx:
                ref = self._reference_log_probs([self.obs[i] for i in dec_idx], [cands[i] for i in dec_idx], None).cpu()
                for j, i in enumerate(dec_idx):
                    ref_rows[i] = ref[j, : len(cands[i])]
            buf["observations"].append(list(self.obs))
            buf["candidates"].append(cands)
            buf["instructions"].append(instructions)
            buf["ref_log_probs"].append(ref_rows)
            buf["actions"][t] = actions
            buf["log_probs"][t] = chosen
            buf["values"][t] = out.state_values.float().cpu()
            buf["decision"][t] = torch.tensor(decision, dtype=torch.float)
            env_actions = [c[a] for c, a in zip(cands, actions.tolist())]
            self.obs, rewards, terminated, truncated, self.infos = self.envs.step(env_actions)
            ends = terminated | truncated
            scaled = torch.as_tensor(rewards, dtype=torch.float) * cfg.reward_scale
            if cfg.bootstrap_truncated and truncated.any():
                cut = [i for i in range(N) if truncated[i] and not terminated[i]]
                final = [self.infos["final_obs"][i] for i in cut]
                # final_info is a dict of per-env arrays (gymnasium's vector infos)
                f_actions = self.infos.get("final_info", {}).get("available_actions")
                fcands = [click_candidates((f_actions[i] if f_actions is not None else None) or []) or ["click[back to search]"] for i in cut]
                v = self._forward(policy, final, fcands).state_values.float().cpu()
                for j, i in enumerate(cut):
                    scaled[i] += cfg.gamma * v[j]
            buf["rewards"][t] = scaled
            buf["ends"][t] = torch.as_tensor(ends, dtype=torch.float)
            for i in range(N):
                if ends[i]:
                    episode_rewards.append(float(rewards[i]))
        cands, _, instructions = self._pages(self.obs, self.infos)
        buf["next_value"] = self._forward(policy, self.obs, cands, instructions).state_values.float().cpu()
        buf["episode_rewards"] = episode_rewards
        policy.train(was_training)
        return buf

    # ------------------------------------------------------------------ optimisation
    def _il_batch(self, rng: random.Random):
        n = len(self.il_dataset)
        rows = [self.il_dataset[rng.randrange(n)] for _ in range(min(self.config.il_batch_size, n))]
        return (
            [r["observation"] for r in rows],
            [list(r["candidates"]) for r in rows],
            [r.get("instruction") for r in rows],
            torch.tensor([int(r["label"]) for r in rows]),
        )

    def optimise(self, buf: dict[str, Any]) -> dict[str, float]:
        """PPO epochs on one rollout; returns the mean of each loss/statistic over the minibatches."""
        cfg = self.config
        device = self.accelerator.device
        T, N = cfg.num_steps, cfg.num_envs
        advantages, returns = compute_gae(buf["rewards"], buf["values"], buf["ends"], buf["next_value"], cfg.gamma, cfg.gae_lambda)
        flat = lambda x: x.reshape(T * N)  # noqa: E731  (t-major: index t * N + i)
        b_obs = [o for row in buf["observations"] for o in row]
        b_cands = [c for row in buf["candidates"] for c in row]
        b_instr = [s for row in buf["instructions"] for s in row]
        b_ref = [r for row in buf["ref_log_probs"] for r in row]
        b_actions, b_logp, b_values = flat(buf["actions"]), flat(buf["log_probs"]), flat(buf["values"])
        b_adv, b_ret, b_dec = flat(advantages), flat(returns), flat(buf["decision"])
        mb_size = T * N // cfg.num_minibatches
        il_rng = random.Random(cfg.seed * 1_000_003 + self.update)
        stats: dict[str, list[float]] = {}
        self.model.train()
        stop = False
        for epoch in range(cfg.num_epochs):
            order = torch.randperm(T * N).tolist()
            for start in range(0, T * N, mb_size):
                idx = order[start:start + mb_size]
                obs = [b_obs[i] for i in idx]
                cands = [b_cands[i] for i in idx]
                instr = [b_instr[i] for i in idx]
                n_il = 0
                if cfg.il_coef > 0:
                    il_obs, il_cands, il_instr, il_labels = self._il_batch(il_rng)
                    n_il = len(il_obs)
                    obs, cands, instr = obs + il_obs, cands + il_cands, instr + il_instr
                out = self._forward(self.model, obs, cands, instr)
                B = len(idx)
                log_probs, mask = out.log_probs[:B].float(), out.candidate_mask[:B]
                actions = b_actions[idx].to(device)
                new_logp = log_probs.gather(1, actions[:, None]).squeeze(1)
                weights = b_dec[idx].to(device)
                n_dec = weights.sum().clamp(min=1.0)
                adv = b_adv[idx].to(device)
                if cfg.normalize_advantages and weights.sum() > 1:
                    mean = (adv * weights).sum() / n_dec
                    std = (((adv - mean) ** 2 * weights).sum() / (n_dec - 1)).sqrt()
                    adv = (adv - mean) / (std + 1e-8)
                pg_loss, _, clip_frac, approx_kl = clipped_policy_loss(new_logp, b_logp[idx].to(device), adv, cfg.clip_coef, weights)
                values = out.state_values[:B].float()
                ret = b_ret[idx].to(device)
                if cfg.clip_vloss:
                    old_v = b_values[idx].to(device)
                    clipped_v = old_v + torch.clamp(values - old_v, -cfg.clip_coef, cfg.clip_coef)
                    v_loss = 0.5 * torch.max((values - ret) ** 2, (clipped_v - ret) ** 2).mean()
                else:
                    v_loss = 0.5 * ((values - ret) ** 2).mean()
                entropy = (exact_entropy(log_probs, mask) * weights).sum() / n_dec
                ref = pad_log_probs([b_ref[i] for i in idx], log_probs.shape[1], device)
                kl = (exact_kl(log_probs, ref, mask) * weights).sum() / n_dec
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy + cfg.kl_coef * kl
                il_loss = torch.zeros((), device=device)
                if n_il:
                    il_lp = out.log_probs[B:].float()
                    il_loss = -il_lp.gather(1, il_labels.to(device)[:, None]).mean()
                    loss = loss + cfg.il_coef * il_loss
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for key, value in (
                    ("loss", loss), ("policy_loss", pg_loss), ("value_loss", v_loss), ("entropy", entropy), ("kl_ref", kl),
                    ("il_loss", il_loss), ("clip_fraction", clip_frac), ("approx_kl", approx_kl), ("grad_norm", grad_norm),
                ):
                    stats.setdefault(key, []).append(float(value.detach()) if torch.is_tensor(value) else float(value))
                if cfg.target_kl is not None and float(approx_kl) > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        self.optimizer.zero_grad(set_to_none=True)
        result = {k: sum(v) / len(v) for k, v in stats.items()}
        result["epochs"] = epoch + 1
        dec = b_dec.bool()
        result["decision_fraction"] = float(b_dec.mean())
        result["value_mean"] = float(b_values.mean())
        result["advantage_mean"] = float(b_adv[dec].mean()) if dec.any() else 0.0
        return result

    # ------------------------------------------------------------------ the loop
    def start_envs(self) -> None:
        """Build this process's search policy and environments (inside the process, never before a
        fork: each process has its own sessions and search engine) and reset them."""
        from webshop_trl.agents.search_policy import make_search_policy
        from webshop_trl.envs import WebShopVectorEnv

        self.search_policy = make_search_policy(self.script_args.query_source, data_dir=self.script_args.data_dir)
        if self.envs is None:
            self.envs = WebShopVectorEnv(self.config.num_envs, self._env_config())
        env_seed = self.config.seed + 100_003 * self.accelerator.process_index + 7_919 * self.update
        self.obs, self.infos = self.envs.reset(seed=env_seed, options={"split": self.script_args.goal_split, "split_mode": self.script_args.goal_split_mode})

    def train(self, resume_from_checkpoint: str | bool | None = None) -> list[dict[str, Any]]:
        """Run ``config.num_updates`` updates (from the checkpoint's count when resuming); returns the logged metrics."""
        from accelerate.utils import set_seed

        cfg = self.config
        acc = self.accelerator
        resume = resume_from_checkpoint if resume_from_checkpoint is not None else cfg.resume_from_checkpoint
        set_seed(cfg.seed, device_specific=True)
        if resume not in (None, False, "", "false", "False"):
            self.load_checkpoint(resume)
        self.start_envs()
        if acc.is_main_process:
            os.makedirs(cfg.output_dir, exist_ok=True)
        if acc.log_with:
            acc.init_trackers("webshop-ppo", config={k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str, bool))})
        started = time.perf_counter()
        while self.update < cfg.num_updates:
            t0 = time.perf_counter()
            if cfg.anneal_lr:
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.learning_rate * (1.0 - self.update / cfg.num_updates)
            buf = self.rollout()
            t1 = time.perf_counter()
            stats = self.optimise(buf)
            t2 = time.perf_counter()
            self.update += 1
            ep = buf["episode_rewards"]
            counts = torch.tensor(
                [sum(ep), float(len(ep)), float(sum(r >= 1.0 - 1e-9 for r in ep)), float(cfg.batch_size)], device=acc.device
            )
            counts = acc.reduce(counts, reduction="sum").cpu()
            names = sorted(stats)
            means = acc.reduce(torch.tensor([stats[k] for k in names], dtype=torch.float, device=acc.device), reduction="mean").cpu()
            self.env_steps += int(counts[3])
            self.episodes += int(counts[1])
            metrics: dict[str, Any] = {"update": self.update, "env_steps": self.env_steps, "episodes": self.episodes}
            n_ep = float(counts[1])
            metrics["episode_reward"] = float(counts[0]) / n_ep if n_ep else None
            metrics["success_rate"] = float(counts[2]) / n_ep if n_ep else None
            metrics["episodes_this_update"] = int(n_ep)
            metrics.update({k: float(v) for k, v in zip(names, means)})
            metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
            metrics["rollout_s"], metrics["optimise_s"] = t1 - t0, t2 - t1
            metrics["elapsed_s"] = time.perf_counter() - started
            self.history.append(metrics)
            if self.update % cfg.logging_steps == 0 or self.update == cfg.num_updates:
                self.log(metrics)
            if cfg.save_steps and self.update % cfg.save_steps == 0:
                self.save_checkpoint()
        acc.wait_for_everyone()
        if acc.log_with:
            acc.end_training()
        return self.history

    def log(self, metrics: dict[str, Any]) -> None:
        acc = self.accelerator
        if acc.log_with:
            acc.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=self.update)
        if acc.is_main_process:
            line = json.dumps(metrics)
            print(line, flush=True)
            with open(os.path.join(self.config.output_dir, METRICS_FILE), "a") as f:
                f.write(line + "\n")

    # ------------------------------------------------------------------ saving
    def save_policy(self, directory: str | os.PathLike) -> None:
        """``save_pretrained`` of the policy and its processor (with LoRA: the adapter + processor)."""
        acc = self.accelerator
        if acc.is_main_process:
            model = self.unwrapped
            model.save_pretrained(directory)
            self.processor.save_pretrained(directory)
        acc.wait_for_everyone()

    def save_checkpoint(self) -> Path:
        """``output_dir/checkpoint-<update>``: the policy (save_pretrained), accelerate state
        (model, optimiser, RNGs) and trainer_state.json; older checkpoints beyond save_total_limit go.

        Written into ``tmp-checkpoint-<update>`` and renamed when complete: a kill while saving
        leaves the previous checkpoints as they were (and a stray tmp- folder, removed next time)."""
        acc = self.accelerator
        root = Path(self.config.output_dir)
        directory = root / f"{CHECKPOINT_PREFIX}{self.update}"
        staging = root / f"{TMP_PREFIX}{CHECKPOINT_PREFIX}{self.update}"
        if acc.is_main_process and staging.exists():
            shutil.rmtree(staging)
        acc.wait_for_everyone()
        self.save_policy(staging)
        acc.save_state(str(staging / STATE_DIR))
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {"update": self.update, "env_steps": self.env_steps, "episodes": self.episodes}
            write_text_atomic(staging / TRAINER_STATE, json.dumps(state, indent=2))
            fsync_dir(staging)
            if directory.exists():  # a checkpoint of the same update from before a resume
                old = root / f"{TMP_PREFIX}old-{directory.name}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
                os.replace(staging, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, directory)
            fsync_dir(root)
            limit = self.config.save_total_limit
            if limit:
                for old in sorted_checkpoints(self.config.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return directory

    def load_checkpoint(self, checkpoint: str | bool) -> Path:
        """Continue from ``checkpoint`` (a folder, or true / 'true' for the last in output_dir)."""
        from webshop_trl.trainers.checkpoints import resolve_resume_from_checkpoint

        resolved = resolve_resume_from_checkpoint(checkpoint, self.config.output_dir)
        if resolved is None:
            raise ValueError(f"resume_from_checkpoint={checkpoint!r} names no checkpoint")
        directory = Path(resolved)
        self.accelerator.load_state(str(directory / STATE_DIR))
        state = json.loads((directory / TRAINER_STATE).read_text())
        self.update, self.env_steps, self.episodes = int(state["update"]), int(state["env_steps"]), int(state["episodes"])
        if self.accelerator.is_main_process:
            self._trim_metrics_log()
        self.accelerator.wait_for_everyone()
        logger.info("resumed from %s at update %d", directory, self.update)
        return directory

    def _trim_metrics_log(self) -> None:
        """Drop metrics.jsonl lines of updates after the resumed one (they will be run again)."""
        path = Path(self.config.output_dir) / METRICS_FILE
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if int(json.loads(line)["update"]) <= self.update:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by the kill
        write_text_atomic(path, "".join(x + "\n" for x in kept))

    def last_metrics(self) -> dict[str, Any] | None:
        """The last logged update's metrics (this run's, else metrics.jsonl's last line)."""
        if self.history:
            return dict(self.history[-1])
        path = Path(self.config.output_dir) / METRICS_FILE
        try:
            lines = [x for x in path.read_text().splitlines() if x.strip()]
            return json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ model card and Hub
    model_card_data: dict | None = None  # set by the entry script: datasets, base model, recipe

    def create_model_card(self, model_name: str | None = None) -> Path | None:
        """Our model card (README.md) in output_dir: data, base checkpoint, recipe, last metrics."""
        from webshop_trl.trainers.model_card import hub_base_model, recipe_values, render_model_card, write_model_card

        if not self.accelerator.is_main_process:
            return None
        cfg = self.config
        data = dict(self.model_card_data or {})
        if model_name is None:
            model_name = cfg.hub_model_id.split("/")[-1] if cfg.hub_model_id else Path(cfg.output_dir).name
        datasets = data.get("datasets")
        if datasets is None:
            datasets = [{"name": f"WebShop {self.script_args.goal_split} goals ({self.script_args.goal_split_mode} split)", "source": "environment"}]
        datasets = [dict(d) for d in datasets]
        for d in datasets:  # the environment entry gets the run's totals
            if d.get("source") == "environment":
                d.update(env_steps=self.env_steps, episodes=self.episodes, updates=self.update)
        hyperparameters = data.get("hyperparameters") or {
            "environment": recipe_values(self.script_args), "training": recipe_values(cfg, ("seed", "num_updates", "learning_rate")),
        }
        hyperparameters = {k: dict(v) for k, v in hyperparameters.items()}
        hyperparameters.setdefault("training", {})["processes"] = self.accelerator.num_processes
        last = self.last_metrics()
        base = data.get("base_model")
        text = render_model_card(
            method="ppo", model_name=model_name, base_model=base, base_model_hub_id=hub_base_model(base),
            datasets=datasets, hyperparameters=hyperparameters, metrics={"last update": last} if last else {},
            hub_model_id=cfg.hub_model_id, tags=data.get("tags", ()), notes=data.get("notes", ()),
        )
        return write_model_card(cfg.output_dir, text)

    def push_to_hub(self, commit_message: str = "End of training (webshop-trl PPO)") -> str | None:
        """Create the Hub repo (hub_model_id, default output_dir's name) and upload output_dir:
        the final policy, README.md, metrics.jsonl; not the checkpoints. Returns the repo id."""
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return None
        from huggingface_hub import HfApi

        cfg = self.config
        api = HfApi()
        repo_id = api.create_repo(cfg.hub_model_id or Path(cfg.output_dir).name, private=cfg.hub_private_repo, exist_ok=True).repo_id
        if cfg.hub_revision:
            api.create_branch(repo_id, branch=cfg.hub_revision, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id, folder_path=cfg.output_dir, commit_message=commit_message, revision=cfg.hub_revision,
            ignore_patterns=[f"{CHECKPOINT_PREFIX}*", f"{TMP_PREFIX}*", "_*", ".*"],
        )
        logger.info("pushed %s to the Hub repo %s", cfg.output_dir, repo_id)
        self.accelerator.wait_for_everyone()
        return repo_id

    def save_final(self, output_dir: str | None = None) -> None:
        """The trained policy in ``output_dir`` (LoRA: the adapter in output_dir/adapter and the merged
        policy in output_dir), loadable with ``ActionScorerModel.from_pretrained``."""
        output_dir = output_dir or self.config.output_dir
        model = self.unwrapped
        if not _is_peft(model):
            self.save_policy(output_dir)
            return
        self.save_policy(os.path.join(output_dir, ADAPTER_DIR))
        if self.accelerator.is_main_process:
            merged = copy.deepcopy(model).merge_and_unload()
            merged.processor = self.processor
            merged.save_pretrained(output_dir)
        self.accelerator.wait_for_everyone()


def sorted_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-<n>`` folders of ``output_dir``, oldest (smallest n) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


__all__ = ["PPOTrainer", "sorted_checkpoints"]
