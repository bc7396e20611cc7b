"""The WebShop text environment: a gymnasium.Env and a vector form for batched agents."""

import gymnasium as gym

from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.webshop_env import EpisodeOverError, WebShopEnv
from webshop_trl.envs.vector import WebShopVectorEnv

__all__ = ["WebShopConfig", "WebShopEnv", "WebShopVectorEnv", "EpisodeOverError"]

if "WebShop-v0" not in gym.registry:
    gym.register(id="WebShop-v0", entry_point="webshop_trl.envs:WebShopEnv")
