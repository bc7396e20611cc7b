"""Importers of WebShop's trajectory data into our trajectory format (and the IL exporter).

- `import_il_trajectories` / `export_il_trajectories`: WebShop's IL demonstrations
  (``il_trajs_finalized_images.jsonl``), see `il_format.py`.
- `import_session_logs`: the raw MTurk session logs (one page visit per row), one Trajectory
  per episode, with the actions recovered from the page changes (`session_logs.py`) and, given a
  catalog, text_rich observations and a replay check in our environment (`replay.py`).

Every importer names the file and line of a malformed record (`DataFileError`); with
``lenient=True`` the record is skipped and described in the ``skipped`` list instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from webshop_trl.data.catalog import Catalog
from webshop_trl.errors import DataFileError
from webshop_trl.trajectories.format import Step, Trajectory
from webshop_trl.trajectories.il_format import export_il_trajectories, import_il_trajectories
from webshop_trl.trajectories.instructions import HumanGoalIndex, split_of_index
from webshop_trl.trajectories.jsonl import LineErrors, read_json_lines
from webshop_trl.trajectories.replay import ASSUMED_RESULTS_TOTAL, EnvReplayer, MissingProducts, render_logged_page
from webshop_trl.trajectories.session_logs import (
    LoggedPage,
    LogRowError,
    TransitionError,
    goal_from_log,
    group_episodes,
    log_anomalies,
    logged_available_actions,
    parse_row,
    transition,
)

SESSION_LOG_SOURCE = "webshop-mturk-log"

__all__ = [
    "import_il_trajectories",
    "export_il_trajectories",
    "import_session_logs",
    "session_log_files",
    "SESSION_LOG_SOURCE",
]


def session_log_files(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Path]:
    """The log files to read: every ``*.jsonl`` of a folder (sorted), one file, or a list."""
    if isinstance(paths_or_dir, (str, Path)):
        root = Path(paths_or_dir)
        if root.is_dir():
            files = sorted(root.glob("*.jsonl"))
            if not files:
                raise DataFileError(f"no session log files (*.jsonl) in {root}")
            return files
        paths = [root]
    else:
        paths = [Path(p) for p in paths_or_dir]
    for p in paths:
        if not p.is_file():
            raise DataFileError(f"session log file not found: {p}")
    if not paths:
        raise DataFileError("no session log files given")
    return paths


def _read_pages(files: list[Path], lenient: bool, skipped: list[str] | None) -> Iterator[LoggedPage]:
    for path in files:
        errors = LineErrors(path, lenient, skipped)
        for lineno, row in read_json_lines(path, errors, "session log row"):
            try:
                yield parse_row(row, path, lineno)
            except LogRowError as exc:
                errors.handle(lineno, f"malformed session log row: {exc}")


@dataclass
class _Episode:
    """One episode's pages with the reloads dropped, and the action into each later page."""

    pages: list[LoggedPage]
    actions: list[str] = field(default_factory=list)
    reloads: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    @classmethod
    def recover(cls, visits: list[LoggedPage]) -> "_Episode":
        transition(None, visits[0])  # raises unless it starts on the search page
        ep = cls(pages=[visits[0]])
        for cur in visits[1:]:
            prev = ep.pages[-1]
            action = transition(prev, cur)
            if action is None:
                ep.reloads.append(cur.where)
                continue
            ep.anomalies += log_anomalies(prev, cur, action)
            ep.actions.append(action)
            ep.pages.append(cur)
        return ep

    def visited_before_each_step(self) -> list[set[str]]:
        """Products opened since the last 'back to search' (text_rich marks them as clicked)."""
        out, visited = [], set()
        for action, nxt in zip(self.actions, self.pages[1:]):
            out.append(set(visited))
            if action == "click[back to search]":
                visited = set()
            elif nxt.kind == "item_page" and action == f"click[{(nxt.asin or '').lower()}]":
                visited.add((nxt.asin or "").upper())
        return out


@dataclass
class _SessionLogImporter:
    catalog: Catalog | None
    goals: HumanGoalIndex | None
    replayer: EnvReplayer | None
    header: str

    def trajectory(self, ep: _Episode, episode_no: int) -> Trajectory:
        first, last = ep.pages[0], ep.pages[-1]
        index = self.goals.index_of(first.goal["instruction_text"]) if self.goals else None
        goal = goal_from_log(first.goal, index)
        steps, missing_steps, missing_products = [], [], []
        rendered: list[str | None] = []
        for k, (page, action, visited) in enumerate(zip(ep.pages, ep.actions, ep.visited_before_each_step())):
            observation: str | None = None
            available = logged_available_actions(page)
            if self.catalog is not None:
                try:
                    observation, available = render_logged_page(page, goal, visited, self.catalog, self.header)
                except MissingProducts as exc:
                    missing_products += [a for a in exc.asins if a not in missing_products]
            if observation is None:
                missing_steps.append(k)
            rendered.append(observation)
            steps.append(Step(observation or "", list(available or []), action, 0.0))
        completed = last.kind == "done"
        reward = last.reward if completed and last.reward is not None else 0.0
        if completed and steps:
            steps[-1].reward = reward
        metadata: dict[str, Any] = {
            "session_id": first.session_id,
            "episode": episode_no,
            "rows": [p.where for p in ep.pages],
            "reloads": ep.reloads,
            "goal_index": index,
            "split": None if index is None else split_of_index(index),
            "observation_mode": "text_rich" if self.catalog is not None else None,
            "observations": _coverage(len(steps), len(missing_steps), self.catalog is not None),
            "missing_observation_steps": missing_steps,
            "missing_products": missing_products,
            "results_total_assumed": ASSUMED_RESULTS_TOTAL,
            "completed": completed,
            "purchased": {"asin": last.asin, "options": dict(last.options), "price": last.price} if completed else None,
            "reward_info": last.reward_info if completed else None,
            "log_anomalies": ep.anomalies,
        }
        if self.replayer is not None:
            metadata["replay"] = self.replayer.replay(goal, ep.actions, rendered).to_dict()
        goal_dict = goal.to_dict()
        goal_dict["index"] = index
        return Trajectory(goal=goal_dict, steps=steps, final_reward=reward, source=SESSION_LOG_SOURCE, metadata=metadata)


def _coverage(n_steps: int, n_missing: int, have_catalog: bool) -> str:
    if not have_catalog:
        return "none (no catalog given)"
    if n_missing == 0:
        return "complete"
    return "partial" if n_missing < n_steps else "none (products not in the catalog)"


def import_session_logs(
    paths_or_dir: str | Path | Iterable[str | Path],
    catalog: Catalog | None = None,
    lenient: bool = False,
    skipped: list[str] | None = None,
    human_goals_path: str | Path | None = None,
    replay: bool = True,
    search_engine: Any = None,
    header: str = "WebShop",
) -> Iterator[Trajectory]:
    """Yield one Trajectory per episode of WebShop's MTurk session logs.

    Rows are grouped by the session id in their URL; a session holds a new episode whenever its
    goal changes or after a purchase. Actions are recovered from consecutive page visits
    (reloads dropped, listed in ``metadata['reloads']``); the final reward is the logged one.

    With a ``catalog`` each observation is the logged page drawn by our page model (text_rich,
    with ``header`` on the search page) and, when ``replay`` is on, the actions are played
    through `WebShopEnv` on the log's goal (``search_engine``: an engine over ``catalog``, built
    if None); ``metadata['replay']`` says which action our environment rejected and why. Pages
    whose products the catalog lacks get an empty observation, listed in metadata. Without a
    catalog, observations are empty and ``metadata['observations']`` says so; available actions
    are still filled where the log alone gives them (search, results and sub-pages).

    ``human_goals_path`` (WebShop's human_goals.json) gives each goal its index and split.
    Malformed rows, and episodes whose page sequence no action explains, raise `DataFileError`
    with file and line; with ``lenient=True`` they are skipped and described in ``skipped``.
    """
    files = session_log_files(paths_or_dir)
    goals = HumanGoalIndex.load(human_goals_path) if human_goals_path is not None else None
    replayer = EnvReplayer(catalog, search_engine, header) if catalog is not None and replay else None
    importer = _SessionLogImporter(catalog, goals, replayer, header)
    return _iter_sessions(files, importer, lenient, skipped)


def _iter_sessions(files: list[Path], importer: _SessionLogImporter, lenient: bool, skipped: list[str] | None) -> Iterator[Trajectory]:
    episodes = group_episodes(_read_pages(files, lenient, skipped))
    numbers: dict[str, int] = {}
    for visits in episodes:
        session = visits[0].session_id
        numbers[session] = numbers.get(session, -1) + 1
        try:
            ep = _Episode.recover(visits)
        except TransitionError as exc:
            message = f"{visits[0].where}: episode {numbers[session]} of session {session!r} cannot be followed: {exc}"
            if not lenient:
                raise DataFileError(message) from exc
            if skipped is not None:
                skipped.append(message)
            continue
        if not ep.actions:
            continue  # a search page that was never acted on: nothing to learn from
        yield importer.trajectory(ep, numbers[session])
