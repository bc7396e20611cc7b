"""Trajectories: one documented JSON-lines format, read and written by `format.py`."""

from webshop_trl.trajectories.format import Step, Trajectory, read_trajectories, write_trajectories, append_trajectory

__all__ = ["Step", "Trajectory", "read_trajectories", "write_trajectories", "append_trajectory"]
