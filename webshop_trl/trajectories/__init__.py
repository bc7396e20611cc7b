"""Trajectories: one documented JSON-lines format (`format.py`), and importers of WebShop's data.

`import_il_trajectories` / `export_il_trajectories` convert WebShop's IL demonstrations
(`il_format.py`); `import_session_logs` turns the raw MTurk session logs into trajectories
(`importers.py`). None of them imports the environment until a replay needs it.
"""

from webshop_trl.trajectories.format import Step, Trajectory, append_trajectory, read_trajectories, write_trajectories
from webshop_trl.trajectories.il_format import export_il_trajectories, import_il_trajectories
from webshop_trl.trajectories.importers import import_session_logs

__all__ = [
    "Step",
    "Trajectory",
    "read_trajectories",
    "write_trajectories",
    "append_trajectory",
    "import_il_trajectories",
    "export_il_trajectories",
    "import_session_logs",
]
