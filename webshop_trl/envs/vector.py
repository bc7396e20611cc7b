"""`WebShopVectorEnv`: many WebShop sessions stepped together, for agents that score in batches.

All sub-environments share one backend (catalog, goals, search engine). Autoreset is gymnasium's
SAME_STEP mode: when an episode ends, the returned observation is already the next episode's and
``infos["final_obs"]`` / ``infos["final_info"]`` hold the finished one.

Goals come from a split (drawn as `WebShopEnv.reset` draws them) or from a finite queue
(``reset(options={"goal_queue": [...]})``), which is how an evaluation covers every goal of a split
exactly once: when the queue is empty, finished sessions go idle (``infos["active"]`` False) and
their actions are ignored. A queue entry (or a ``goal_indices`` entry) that is a string is a
free-text instruction, played as `WebShopEnv` plays ``reset(options={"instruction": text})``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from webshop_trl.envs.backend import get_backend
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.webshop_env import AnyText, WebShopEnv


class WebShopVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, config: WebShopConfig | None = None, **overrides: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        config = dataclasses.replace(config or WebShopConfig(), **overrides)
        backend = get_backend(config)
        self.envs = [WebShopEnv(config, backend=backend) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.config = config
        self.backend = backend
        self.single_observation_space = AnyText()
        self.single_action_space = self.envs[0].action_space
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self.active = np.ones(num_envs, dtype=bool)
        self._queue: deque[int] | None = None
        self._split: tuple[str, str] | None = None
        self._obs: list[str] = [""] * num_envs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Options: ``goal_queue`` (goal indices served in order), or ``split`` (+``split_mode``)
        to draw goals from, or ``goal_indices`` (one per env, no autoreset queue). Entries of
        ``goal_queue`` / ``goal_indices`` may be free-text instructions (str) instead of indices."""
        options = dict(options or {})
        queue = options.pop("goal_queue", None)
        per_env = options.pop("goal_indices", None)
        split = options.pop("split", None)
        split_mode = options.pop("split_mode", "index")
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}")
        self._queue = deque(queue) if queue is not None else None
        self._split = (split, split_mode) if split is not None else None
        if per_env is not None and len(per_env) != self.num_envs:
            raise ValueError(f"goal_indices needs {self.num_envs} entries, got {len(per_env)}")
        infos: dict[str, Any] = {}
        self.active[:] = True
        for i, env in enumerate(self.envs):
            env_seed = None if seed is None else seed + i
            goal = per_env[i] if per_env is not None else None
            obs, info = self._reset_one(i, env_seed, goal)
            infos = self._add_info(infos, info, i)
        infos = self._add_info_active(infos)
        return list(self._obs), infos

    def step(self, actions: Sequence[str | None]):
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            if not self.active[i]:
                continue
            obs, reward, term, trunc, info = env.step(action)
            rewards[i], terminated[i], truncated[i] = reward, term, trunc
            if term or trunc:
                info = {"final_obs": obs, "final_info": info}
                _, reset_info = self._reset_one(i, None, None)
                info.update(reset_info)
            else:
                self._obs[i] = obs
            infos = self._add_info(infos, info, i)
        infos = self._add_info_active(infos)
        return list(self._obs), rewards, terminated, truncated, infos

    def _reset_one(self, i: int, seed: int | None, goal_index: int | str | None) -> tuple[str, dict[str, Any]]:
        env = self.envs[i]
        if goal_index is None and self._queue is not None:
            if not self._queue:
                self.active[i] = False
                self._obs[i] = ""
                return "", {}
            goal_index = self._queue.popleft()
        if isinstance(goal_index, str):  # a free-text instruction, no goal
            obs, info = env.reset(seed=seed, options={"instruction": goal_index})
        elif goal_index is not None:
            obs, info = env.reset(seed=seed, options={"goal_index": goal_index})
        elif self._split is not None:
            obs, info = env.reset(seed=seed, options={"split": self._split[0], "split_mode": self._split[1]})
        else:
            obs, info = env.reset(seed=seed)
        self._obs[i] = obs
        return obs, info

    def _add_info(self, vector_infos: dict[str, Any], env_info: dict[str, Any], env_num: int) -> dict[str, Any]:
        """gymnasium's dict-of-arrays infos, but every leaf in an object array: gymnasium would
        put a float into a float array and turn another session's None into NaN."""
        for key, value in env_info.items():
            if isinstance(value, dict):
                vector_infos[key] = self._add_info(vector_infos.get(key, {}), value, env_num)
            else:
                array = vector_infos.get(key)
                if array is None:
                    array = vector_infos[key] = np.full(self.num_envs, None, dtype=object)
                array[env_num] = value
            mask = vector_infos.setdefault(f"_{key}", np.zeros(self.num_envs, dtype=bool))
            mask[env_num] = True
        return vector_infos

    def _add_info_active(self, infos: dict[str, Any]) -> dict[str, Any]:
        infos["active"] = self.active.copy()
        return infos

    def close_extras(self, **kwargs: Any) -> None:
        self.envs = []


def session_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Session i's info out of the vector env's dict-of-arrays infos (gymnasium's batched layout:
    ``infos[key][i]`` with a ``_key`` mask saying which sessions have it); nested dicts such as
    ``final_info`` are un-batched the same way, bookkeeping keys are left out."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info", "active"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            out[key] = session_info(value, i)
        else:
            v = value[i]
            out[key] = v.item() if hasattr(v, "item") else v
    return out
