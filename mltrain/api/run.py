"""Handles of runs and sweeps in the Python API: read their record, wait for them (their output streamed
when asked), cancel them, read their metrics, download their outputs, register their models."""

from __future__ import annotations

import codecs
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.api.records import MetricPoint, ModelRecord, Records, RunRecord, records, run_record
from mltrain.runs.sweep.tags import BEST_RUN_TAG, SWEEP_TAG

if TYPE_CHECKING:
    from mltrain.workspace import Workspace as Store

POLL_S = 0.05  # how often a waiting caller reads the run's state and log (a local read: cheap)
RECOVER_S = 2.0  # how often it checks whether the run's driver is still alive


def run_handle(store: Store, run_id: str) -> Run:
    """A :class:`Sweep` for a sweep's parent run, else a :class:`Run`."""
    tags = store.runs.tags(run_id)
    return (Sweep if tags.get(SWEEP_TAG) == "parent" else Run)(store, run_id)


class Run:
    """A recorded run: ``id``, ``status``, ``record``, ``wait()``, ``stream()``, ``cancel()``,
    ``metrics()``, ``outputs()``, ``register_model()``, ``rerun()``."""

    def __init__(self, store: Store, run_id: str) -> None:
        self._store = store  # the workspace the run is recorded in
        self.id = run_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, status={self.status!r})"

    @property
    def record(self) -> RunRecord:
        """The run's record now, with its last metrics and tags."""
        return run_record(self._store, self._store.runs.get(self.id))

    @property
    def status(self) -> str:
        return self._store.runs.get(self.id).status

    @property
    def tags(self) -> dict[str, str]:
        return self._store.runs.tags(self.id)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Add (or replace) tags of the run."""
        self._store.runs.set_tags(self.id, {str(k): str(v) for k, v in tags.items()})

    # -- following -----------------------------------------------------------------------------------
    def stream(self, follow: bool = True) -> Iterator[str]:
        """The run's output (``logs/std_log.txt``) as text chunks, from the start; with ``follow`` until
        the run ends (a run whose driver died meanwhile is recovered: Failed, "driver lost")."""
        from mltrain.runs.output import STD_LOG
        from mltrain.runs.recovery import recover_orphans
        from mltrain.workspace.run_files import read_run_file
        from mltrain.workspace.runs import TERMINAL

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        offset = 0
        next_recovery = time.monotonic() + RECOVER_S
        while True:
            run = self._store.runs.get(self.id)
            data = read_run_file(self._store, run, STD_LOG, offset)
            if data:
                offset += len(data)
                text = decoder.decode(data)
                if text:
                    yield text
            if run.status in TERMINAL or not follow:
                if run.status in TERMINAL:
                    tail = read_run_file(self._store, run, STD_LOG, offset)
                    text = decoder.decode(tail, final=True)
                    if text:
                        yield text
                return
            if not data:
                time.sleep(POLL_S)
            if time.monotonic() >= next_recovery:
                next_recovery = time.monotonic() + RECOVER_S
                recover_orphans(self._store)

    def wait(self, show_output: bool = False, timeout: float | None = None) -> str:
        """Wait until the run ends; its final status. ``show_output`` prints its output as it comes
        (control characters escaped); TimeoutError after ``timeout`` seconds."""
        from mltrain.runs.detach import wait_for

        if not show_output:
            return str(wait_for(self._store, self.id, timeout=timeout, poll_s=POLL_S)["status"])
        from mltrain.text import LINES, escape_controls

        deadline = None if timeout is None else time.monotonic() + timeout
        for text in self.stream():
            sys.stdout.write(escape_controls(text, LINES))
            sys.stdout.flush()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} is still {self.status} after {timeout:g} s")
        status = self.status
        print(f"[mltrain] run {self.id} {status}", flush=True)
        return status

    @property
    def exit_code(self) -> int | None:
        """What ``python -m mltrain`` would have exited with (None while the run is active)."""
        from mltrain.runs.detach import exit_code
        from mltrain.workspace.runs import TERMINAL

        run = self._store.runs.get(self.id)
        return exit_code(run) if run.status in TERMINAL else None

    def cancel(self, wait_s: float = 30.0) -> str:
        """Cancel the run (and its children); wait up to ``wait_s`` for it to end; its status."""
        from mltrain.runs.cancel import cancel_run

        return str(cancel_run(self._store, self.id, wait_s=wait_s)["status"])

    # -- results -------------------------------------------------------------------------------------
    def metrics(self, name: str | None = None) -> Any:
        """Every logged value with its step and time: ``{name: [MetricPoint, ...]}``, or the list of one
        metric when ``name`` is given."""
        series: dict[str, Records[MetricPoint]] = {}
        for rec in self._store.metrics.history(self.id, name):
            series.setdefault(rec.key, records([])).append(MetricPoint(rec.step, rec.value, rec.ts))
        if name is not None:
            return series.get(name, records([]))
        return series

    def outputs(self, dest: str | os.PathLike[str] | None = None, only: list[str] | None = None) -> Path:
        """Download the run's artifacts (outputs/, logs/, uploads; ``only``: those paths) into ``dest``
        (default ``./<run id>``), each verified against its hash; the folder."""
        from mltrain.errors import WorkspaceError
        from mltrain.workspace.run_files import download_artifacts

        folder = Path(dest if dest is not None else self.id)
        bad = download_artifacts(self._store, self.id, folder, only)
        if bad:
            raise WorkspaceError(
                f"{len(bad)} files of run {self.id} were not downloaded: " + "; ".join(bad),
                hint="restore the blobs from a backup; `mltrain workspace check` lists every bad blob",
            )
        return folder

    def file_names(self) -> list[str]:
        """The paths of the run's stored artifacts."""
        return [a.path for a in self._store.runs.artifacts(self.id)]

    def register_model(self, name: str, path: str = "outputs/model.joblib", **request: Any) -> ModelRecord:
        """Register the run's file ``path`` as the next version of ``name`` with lineage to the run
        (framework, framework_version, description, cpu, memory_gb, tags, properties, format)."""
        from mltrain.registry.from_run import register_from_run_id

        return register_from_run_id(self._store, self.id, {"name": name, "path": path, **request})

    @property
    def models(self) -> Records[ModelRecord]:
        """The model versions registered from this run."""
        return records(self._store.models.by_run(self.id))

    def rerun(self, *overrides: str, wait: bool = False, show_output: bool = True) -> Run:
        """This run again from its record (snapshot, environment lock, config, compute; ``overrides`` on
        top), as ``mltrain runs rerun``, started detached; ``wait``: return once it ended."""
        from mltrain.config.compose import compose_job
        from mltrain.runs.rerun import prepare_rerun, start_rerun

        plan = prepare_rerun(self._store, self.id, list(overrides), lambda o: compose_job(o).config)
        run = Run(self._store, start_rerun(self._store, plan))
        if wait:
            run.wait(show_output=show_output)
        return run


class Sweep(Run):
    """A sweep's parent run: ``children`` (runs, by trial) and ``best`` (its best child) besides a run's
    methods."""

    @property
    def children(self) -> list[Run]:
        rows = self._store.runs.list(parent_run_id=self.id, limit=None)
        return [Run(self._store, r.id) for r in sorted(rows, key=lambda r: (r.created_at, r.id))]

    @property
    def best(self) -> Run | None:
        """The child ranked best by the sweep's primary metric (once the sweep ended), else None."""
        best = self.tags.get(BEST_RUN_TAG)
        return Run(self._store, best) if best else None
