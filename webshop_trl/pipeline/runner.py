"""Run the pipeline's stages in order, each as a subprocess, reusing the finished ones.

Every finished stage leaves a marker, ``<output>/stages/<stage>.json``: the parameters it ran with
(the settings it depends on, its command, the recipe's sha256 and the run ids of the stages it
read), their hash, its wall time, its outputs and a summary of them. A rerun skips a stage whose
marker hash equals the current parameters' and whose outputs exist; any other stage runs, and
since its new run id is part of its dependants' parameters, they run too. A stage starts by
deleting its marker and moving its old outputs to ``<output>/stale/<stage>/``, so a stage killed
mid-way is never trusted: it has no marker and runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from webshop_trl.errors import WebShopTrlError
from webshop_trl.paths import pid_alive, write_json_atomic
from webshop_trl.pipeline.config import BUDGETS, PipelineConfig
from webshop_trl.pipeline.stages import DISPLAY_ONLY_FLAGS, STAGES, Layout, Stage, recipe_path, repo_root
from webshop_trl.progress import fmt_seconds

MARKER_FORMAT = "webshop-trl/pipeline-stage/v1"
LOG_TAIL_LINES = 25
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PipelineError(WebShopTrlError):
    """A stage failed, or the stages asked for cannot run (the message says which and why)."""


class StageFailed(PipelineError):
    def __init__(self, stage: Stage, index: int, message: str, command: list[str] | None, log: Path | None):
        self.stage, self.command, self.log = stage, command, log
        lines = [f"stage {index}/{len(STAGES)} '{stage.name}' ({stage.title}) failed: {message}"]
        if command:
            lines.append(f"command: {display_command(command)}")
        if log is not None:
            tail = log_tail(log, LOG_TAIL_LINES)
            lines.append(f"log: {log}" + (f" (last {len(tail)} lines):" if tail else " (empty)"))
            lines += [f"    {x}" for x in tail]
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------- small helpers
def display_command(command: list[str]) -> str:
    """The command as a person would type it (``python`` for this interpreter)."""
    return shlex.join(["python" if i == 0 and c == sys.executable else c for i, c in enumerate(command)])


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _lines_of(text: str) -> list[str]:
    """Lines as a terminal would show them: a carriage return (progress bars) overwrites the line."""
    out = []
    for line in _ANSI.sub("", text).split("\n"):
        line = line.rstrip("\r").split("\r")[-1].rstrip()
        out.append(line)
    return out


def log_tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [x for x in _lines_of(text) if x.strip()]
    return lines[-n:]


def last_log_line(path: Path) -> str:
    tail = log_tail(path, 1)
    return tail[0].strip() if tail else ""


def fmt_minutes(minutes: float) -> str:
    return fmt_seconds(minutes * 60)


def _write_json(path: Path, data: Any) -> None:
    write_json_atomic(path, data, indent=2, default=str)


def load_marker(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else None


# ---------------------------------------------------------------------------- progress display
class Display:
    """Stage i/N, name, state, elapsed and expected minutes; the running stage's last log line.

    A live rich table on a terminal; plain lines otherwise (logs, CI, tests)."""

    def __init__(self, total_budget_minutes: float, quiet: bool = False, live: bool | None = None):
        from rich.console import Console

        self.console = Console(stderr=False, highlight=False)
        self.quiet = quiet
        self.live_mode = self.console.is_terminal if live is None else live
        self.rows: list[list[str]] = []
        self.current: tuple[int, Stage, float, float, Path] | None = None
        self.started = time.monotonic()
        self.budget_minutes = total_budget_minutes
        self._live = None

    def print(self, text: str = "") -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> "Display":
        if self.live_mode and not self.quiet:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render(final=True))
            self._live.__exit__(*exc)
            self._live = None

    def _elapsed_line(self) -> str:
        return f"elapsed {fmt_seconds(time.monotonic() - self.started)} of ~{fmt_minutes(self.budget_minutes)} budgeted for this run"

    def _render(self, final: bool = False):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("#", "stage", "state", "time", "expected"):
            table.add_column(col)
        for row in self.rows:
            table.add_row(*row)
        parts: list[Any] = [table]
        if self.current is not None and not final:
            i, stage, t0, expected, log = self.current
            table.add_row(f"{i}/{len(STAGES)}", stage.name, "[yellow]running[/]", fmt_seconds(time.monotonic() - t0),
                          fmt_minutes(expected))
            line = last_log_line(log)
            width = max(20, self.console.width - 10)
            parts.append(Text(f"  {stage.name}: {line[:width]}", style="dim"))
        parts.append(Text(self._elapsed_line(), style="bold"))
        return Group(*parts)

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def stage_skipped(self, i: int, stage: Stage, why: str) -> None:
        self.rows.append([f"{i}/{len(STAGES)}", stage.name, f"[dim]{why}[/]", "-", "-"])
        if self._live is None:
            self.print(f"[{i}/{len(STAGES)}] {stage.name}: {why}")
        self.refresh()

    def stage_started(self, i: int, stage: Stage, expected: float, log: Path) -> None:
        self.current = (i, stage, time.monotonic(), expected, log)
        if self._live is None:
            self.print(f"[{i}/{len(STAGES)}] {stage.name}: {stage.title} (expected ~{fmt_minutes(expected)}; log {log})")
        self.refresh()

    def stage_finished(self, i: int, stage: Stage, seconds: float, expected: float, ok: bool) -> None:
        self.current = None
        state = "[green]done[/]" if ok else "[red]failed[/]"
        self.rows.append([f"{i}/{len(STAGES)}", stage.name, state, fmt_seconds(seconds), fmt_minutes(expected)])
        if self._live is None:
            word = "done" if ok else "FAILED"
            self.print(f"[{i}/{len(STAGES)}] {stage.name}: {word} in {fmt_seconds(seconds)} "
                       f"(expected ~{fmt_minutes(expected)}); {self._elapsed_line()}")
        self.refresh()


# ---------------------------------------------------------------------------- the runner
@dataclass
class StageOutcome:
    name: str
    action: str  # "ran", "reused", "not selected"
    seconds: float = 0.0


class PipelineRunner:
    """Runs `STAGES` for one `PipelineConfig` into ``output``."""

    def __init__(self, config: PipelineConfig, output: str | Path, *, stages: Iterable[Stage] = STAGES,
                 quiet: bool = False, live: bool | None = None, poll_seconds: float = 0.5,
                 env: dict[str, str] | None = None):
        self.config = config
        self.layout = Layout(Path(output).expanduser().resolve())
        self.stages = tuple(stages)
        self.quiet = quiet
        self.live = live
        self.poll_seconds = poll_seconds
        self.env = env

    # -------------------------------------------------------------- parameters and markers
    def params(self, stage: Stage, dep_run_ids: dict[str, str | None]) -> dict[str, Any]:
        command = [x for x in stage.command(self.config, self.layout) if x not in DISPLAY_ONLY_FLAGS]
        params: dict[str, Any] = {
            "settings": stage.settings(self.config),
            "command": ["python", *command[1:]] if command and command[0] == sys.executable else command,
            "deps": dep_run_ids,
        }
        if stage.recipe_field:
            recipe = recipe_path(getattr(self.config, stage.recipe_field))
            params["recipe_sha256"] = file_sha256(recipe)
        return params

    def _outputs_exist(self, stage: Stage) -> bool:
        return all(p.exists() for p in stage.done_paths(self.layout))

    def plan(self, only: set[str] | None = None, force: set[str] | None = None) -> list[tuple[Stage, str]]:
        """What a run would do with each stage: "reuse", "run" (and why), or "not selected"."""
        return [(s, what) for s, what, _ in self._walk(only, force, execute=False)]

    def _walk(self, only, force, execute: bool, display: Display | None = None):
        only = set(only) if only else None
        force = set(force or ())
        valid: dict[str, dict[str, Any]] = {}  # markers downstream stages may read (current ones)
        planned_ids: dict[str, str] = {}  # dry run: stand-in run ids of stages that would run
        minutes = self.config.expected_minutes()
        for i, stage in enumerate(self.stages, 1):
            dep_ids = {d: (valid[d]["run_id"] if d in valid else planned_ids.get(d)) for d in stage.deps}
            params = self.params(stage, dep_ids)
            digest = params_hash(params)
            old = load_marker(self.layout.marker(stage.name))
            current = (old is not None and old.get("hash") == digest and None not in dep_ids.values()
                       and self._outputs_exist(stage))
            selected = only is None or stage.name in only
            if not selected:
                what = "not selected" + ("" if current else " (out of date)")
                if current:
                    valid[stage.name] = old
                if display:
                    display.stage_skipped(i, stage, what)
                yield stage, what, None
                continue
            missing = [d for d, run_id in dep_ids.items() if run_id is None]
            if missing:
                raise PipelineError(
                    f"stage '{stage.name}' needs {', '.join(repr(m) for m in missing)}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not done or out of date; run them first "
                    f"(`webshop-trl pipeline` without --only, or --only {' '.join(missing)} {stage.name})")
            if current and stage.name not in force:
                valid[stage.name] = old
                if display:
                    display.stage_skipped(i, stage, f"reused (finished {old.get('finished', '?')}, "
                                                    f"{fmt_seconds(old.get('wall_seconds', 0))})")
                yield stage, "reuse", None
                continue
            why = ("forced" if stage.name in force else "no marker" if old is None else
                   "upstream stage reran" if old.get("params", {}).get("deps") != dep_ids else
                   "parameters changed" if old.get("hash") != digest else "outputs missing")
            if not execute:
                planned_ids[stage.name] = f"planned-{stage.name}"
                yield stage, f"run ({why})", None
                continue
            marker = self._run_stage(i, stage, params, digest, minutes.get(stage.name, 0.0), display, why)
            valid[stage.name] = marker
            yield stage, "ran", marker

    # -------------------------------------------------------------- running
    def run(self, only: Iterable[str] | None = None, force: Iterable[str] | None = None) -> list[StageOutcome]:
        L = self.layout
        L.root.mkdir(parents=True, exist_ok=True)
        only_set = set(only) if only else None
        force_set = set(force or ())
        plan = self.plan(only_set, force_set)
        minutes = self.config.expected_minutes()
        budget_total = sum(minutes.values())
        to_run = [s.name for s, what in plan if what.startswith("run")]
        this_run = sum(minutes.get(n, 0.0) for n in to_run)
        self._write_config()
        display = Display(this_run, quiet=self.quiet, live=self.live)
        display.print(f"webshop-trl pipeline: budget '{self.config.budget}' ({BUDGETS[self.config.budget].description})")
        display.print(f"  output {L.root}; the whole budget is about {fmt_minutes(budget_total)} "
                      f"({', '.join(f'{k} {v:g}' for k, v in minutes.items())} minutes)")
        display.print(f"  this run: {len(to_run)} of {len(self.stages)} stages to run ({', '.join(to_run) or 'none'}), "
                      f"about {fmt_minutes(this_run)}; the others are reused or not selected")
        outcomes: list[StageOutcome] = []
        started = time.monotonic()
        with _Lock(L.root / ".lock"), display:
            for stage, what, marker in self._walk(only_set, force_set, execute=True, display=display):
                action = "ran" if what == "ran" else "reused" if what == "reuse" else "not selected"
                outcomes.append(StageOutcome(stage.name, action, marker["wall_seconds"] if marker else 0.0))
        ran = [o for o in outcomes if o.action == "ran"]
        display.print(f"pipeline finished in {fmt_seconds(time.monotonic() - started)}: {len(ran)} stage(s) ran, "
                      f"{sum(o.action == 'reused' for o in outcomes)} reused")
        if L.report_md.is_file() and (only_set is None or "report" in only_set):
            display.print(f"report: {L.report_md}")
        return outcomes

    def _write_config(self) -> None:
        _write_json(self.layout.config_json, {
            "config": self.config.to_dict(),
            "budget": {"name": self.config.budget, "description": BUDGETS[self.config.budget].description,
                       "expected_minutes": self.config.expected_minutes()},
            "stages": [s.name for s in self.stages],
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        })

    def _move_aside(self, stage: Stage) -> None:
        L = self.layout
        marker = L.marker(stage.name)
        if marker.exists():
            marker.unlink()
        existing = [p for p in stage.outputs(L) if p.exists() or p.is_symlink()]
        if not existing:
            return
        stale = L.stale / stage.name
        if stale.exists():
            shutil.rmtree(stale)
        for p in existing:
            target = stale / p.relative_to(L.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p), str(target))

    def _run_stage(self, i: int, stage: Stage, params: dict[str, Any], digest: str, expected: float,
                   display: Display | None, why: str) -> dict[str, Any]:
        L = self.layout
        self._move_aside(stage)
        for p in stage.outputs(L):
            p.parent.mkdir(parents=True, exist_ok=True)
        log = L.log(stage.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        command = stage.command(self.config, L)
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        started_wall = time.strftime("%Y-%m-%d %H:%M:%S")
        t0 = time.monotonic()
        if display:
            display.stage_started(i, stage, expected, log)
        with open(log, "w", encoding="utf-8") as fh:
            fh.write(f"# stage {stage.name} ({why}), started {started_wall}\n# command: {display_command(command)}\n")
            fh.flush()
            try:
                proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=str(repo_root()), env=env)
            except OSError as exc:
                raise StageFailed(stage, i, f"could not start: {exc}", command, log) from exc
            try:
                while True:
                    try:
                        rc = proc.wait(timeout=self.poll_seconds)
                        break
                    except subprocess.TimeoutExpired:
                        if display:
                            display.refresh()
            except BaseException:  # Ctrl-C or an error here: stop the child, leave no marker
                _stop(proc)
                if display:
                    display.stage_finished(i, stage, time.monotonic() - t0, expected, ok=False)
                raise
        seconds = time.monotonic() - t0
        if rc != 0:
            if display:
                display.stage_finished(i, stage, seconds, expected, ok=False)
            raise StageFailed(stage, i, f"exit code {rc} after {fmt_seconds(seconds)}", command, log)
        missing = [str(p) for p in stage.done_paths(L) if not p.exists()]
        if missing:
            if display:
                display.stage_finished(i, stage, seconds, expected, ok=False)
            raise StageFailed(stage, i, f"finished but did not write {', '.join(missing)}", command, log)
        summary = stage.summarize(L) if stage.summarize else {}
        problem = stage.check(L, summary) if stage.check else None
        if problem:
            if display:
                display.stage_finished(i, stage, seconds, expected, ok=False)
            raise StageFailed(stage, i, problem, command, log)
        marker = {
            "format": MARKER_FORMAT,
            "stage": stage.name,
            "title": stage.title,
            "run_id": uuid.uuid4().hex,
            "hash": digest,
            "params": params,
            "command": display_command(command),
            "started": started_wall,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": round(seconds, 2),
            "expected_minutes": expected,
            "reason": why,
            "outputs": [str(p.relative_to(L.root)) for p in stage.outputs(L) if p.exists()],
            "log": str(log.relative_to(L.root)),
            "summary": summary,
        }
        _write_json(L.marker(stage.name), marker)
        if display:
            display.stage_finished(i, stage, seconds, expected, ok=True)
        return marker


class _Lock:
    """One pipeline per output folder: ``<output>/.lock`` holds the running pipeline's pid (a lock
    left by a process that is gone is taken over)."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def __enter__(self) -> "_Lock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and pid_alive(pid):
                    raise PipelineError(f"another pipeline (pid {pid}) is running in {self.path.parent}; "
                                        f"wait for it, or delete {self.path} if it is gone") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise PipelineError(f"could not take the lock {self.path}")

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_pipeline(config: PipelineConfig, output: str | Path, only: Iterable[str] | None = None,
                 force: Iterable[str] | None = None, **kwargs: Any) -> list[StageOutcome]:
    return PipelineRunner(config, output, **kwargs).run(only=only, force=force)


__all__ = ["PipelineError", "PipelineRunner", "StageFailed", "StageOutcome", "load_marker", "params_hash", "run_pipeline"]
