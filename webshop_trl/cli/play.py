"""`webshop-trl play`: shop in the terminal yourself; each episode is saved as a trajectory.

This is how WebShop collected human demonstrations: a person sees the page, chooses an action,
and the session is logged. Type the number of an action, or any raw action such as
``search[red running shoes]``; ``q`` quits. An episode interrupted by ``q``, end of input or
Ctrl-C is still saved, marked ``"completed": false`` in its metadata.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from webshop_trl import paths
from webshop_trl.cli.common import add_env_arguments, env_config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("play", help="shop in the terminal; sessions are saved as trajectories")
    p.add_argument("--goal-index", type=int, default=None, help="play this goal (default: draw from --split)")
    p.add_argument("--split", default="train", choices=["test", "eval", "train"])
    p.add_argument("--episodes", type=int, default=1, help="episodes to play")
    p.add_argument("--output", default=None, help="JSONL file to append to (default outputs/play/trajectories.jsonl)")
    add_env_arguments(p)
    p.set_defaults(func=run, observation_mode="text_rich")


def _ask(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def run(args: argparse.Namespace) -> int:
    from webshop_trl.envs import WebShopEnv
    from webshop_trl.trajectories import Step, Trajectory, append_trajectory

    env = WebShopEnv(env_config_from_args(args))
    out = Path(args.output or (paths.repo_dir() or Path.cwd()) / "outputs" / "play" / "trajectories.jsonl")
    for episode in range(args.episodes):
        options = {"goal_index": args.goal_index} if args.goal_index is not None else {"split": args.split}
        obs, info = env.reset(options=options)
        traj = Trajectory(goal=env.goal.to_dict(), source="human-play",
                          metadata={"observation_mode": env.config.observation_mode, "started": time.time(), "completed": False})
        quit_all = False
        try:
            while True:
                print("\n" + "=" * 78 + f"\n{obs}\n" + "-" * 78)
                actions = info["available_actions"]
                for k, a in enumerate(actions):
                    print(f"  [{k}] {a}")
                line = _ask("action (number, raw action, or q)> ")
                if line is None or line.strip().lower() == "q":
                    quit_all = True
                    break
                line = line.strip()
                action = actions[int(line)] if line.isdigit() and int(line) < len(actions) else line
                if action == "search[<query>]":
                    query = _ask("query> ")
                    if query is None:
                        quit_all = True
                        break
                    action = f"search[{query}]"
                prev_obs, prev_actions = obs, actions
                obs, reward, terminated, truncated, info = env.step(action)
                if not info["valid_action"]:
                    print(f"(invalid: {info.get('invalid_reason')})")
                traj.steps.append(Step(prev_obs, prev_actions, action, reward))
                if terminated or truncated:
                    traj.final_reward = reward
                    traj.metadata["completed"] = bool(terminated)
                    if terminated:
                        print(f"\nYou bought {info['purchased_asin']}: reward {reward:.3f}")
                        print(info["reward_breakdown"])
                    else:
                        print("\nStep limit reached: reward 0")
                    break
        except KeyboardInterrupt:
            quit_all = True
        finally:
            if traj.steps:
                append_trajectory(out, traj)
                print(f"saved episode ({len(traj.steps)} steps) to {out}", file=sys.stderr)
        if quit_all:
            break
    return 0
