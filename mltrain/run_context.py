"""The in-script API: ``from mltrain import Run; run = Run.get_context(); run.log("acc", 0.9)``.

Standard library only: this file is copied onto the ``PYTHONPATH`` of every job, whatever its
environment. Inside an mltrain run it appends JSON lines to ``$MLTRAIN_RUN_DIR/.mltrain/metrics.jsonl``
(the driver tails that file and stores every record); outside one it is an offline run that
prints what it is given. No method raises for a logging problem: a script must never fail
because of its metrics.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

RUN_DIR_ENV = "MLTRAIN_RUN_DIR"
METRICS_FILE = ".mltrain/metrics.jsonl"
RUN_INFO_FILE = ".mltrain/run.json"
UPLOADS_DIR = ".mltrain/uploads"
FLUSH_INTERVAL_S = 0.2

_now = time.time
_float_repr = float.__repr__


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and other common objects JSON-serialisable."""
    for attr in ("tolist", "item"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"), allow_nan=True)


class Run:
    """The run a script belongs to; use :meth:`get_context` rather than the constructor."""

    _context: Run | None = None
    _context_lock = threading.Lock()

    def __init__(self, run_dir: str | os.PathLike[str] | None = None) -> None:
        self._file: Any = None
        self._keys: dict[str, str] = {}
        self._last_flush = 0.0
        self._lock = threading.Lock()
        self.run_dir: Path | None = Path(run_dir) if run_dir else None
        info: dict[str, Any] = {}
        if self.run_dir is not None:
            try:
                info = json.loads((self.run_dir / RUN_INFO_FILE).read_text())
                metrics = self.run_dir / METRICS_FILE
                metrics.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(metrics, "a", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                print(f"mltrain: cannot open the run folder {self.run_dir}: {exc}; logging offline", file=sys.stderr)
                self.run_dir = None
        self.id: str = info.get("run_id", "OfflineRun")
        self.experiment_name: str = info.get("experiment", "offline")
        self.properties: dict[str, Any] = dict(info.get("properties", {}))
        self.parent_id: str | None = info.get("parent_run_id")
        self._target: str | None = None  # set on the parent's proxy: records go to that run
        self._offline_records: list[dict[str, Any]] = []
        if self._file is not None:
            atexit.register(self.flush)
            self._install_sigterm_flush()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def get_context(cls, allow_offline: bool = True) -> Run:
        """The current run: the mltrain run this process belongs to, else an offline run."""
        if cls._context is None:
            with cls._context_lock:
                if cls._context is None:
                    run_dir = os.environ.get(RUN_DIR_ENV)
                    if not run_dir and not allow_offline:
                        raise RuntimeError("not inside an mltrain run and allow_offline=False")
                    cls._context = cls(run_dir or None)
        return cls._context

    @property
    def is_offline(self) -> bool:
        """True outside an mltrain run: records are printed, not stored."""
        return self._file is None

    @property
    def parent(self) -> Run | None:
        """The parent run (a sweep's run for one of its trials), else None; what is logged on it
        is recorded in the parent run."""
        if not self.parent_id or self._target is not None:
            return None
        proxy = object.__new__(Run)
        proxy.__dict__.update(self.__dict__)
        proxy.id, proxy._target, proxy.parent_id = self.parent_id, self.parent_id, None
        proxy._keys = {}
        return proxy

    # -- metrics ------------------------------------------------------------------------------
    def log(self, name: str, value: Any, step: int | None = None, description: str = "") -> None:
        """Log a scalar (number or string) under ``name``, optionally at ``step``."""
        f = self._file
        if f is None or self._target is not None:
            self._record("scalar", name, value, step)
            return
        t = _now()
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = _dumps(str(name))
        if isinstance(value, float):
            v = _float_repr(value) if not (value - value) else _dumps(float(value))
        elif type(value) is int:
            v = str(value)
        else:
            v = self._scalar(value)
        try:
            if step is None:
                f.write('{"t":%.6f,"k":%s,"v":%s}\n' % (t, key, v))  # noqa: UP031 - fastest here
            else:
                f.write('{"t":%.6f,"k":%s,"v":%s,"s":%d}\n' % (t, key, v, step))  # noqa: UP031
            if t - self._last_flush > FLUSH_INTERVAL_S:
                self._last_flush = t
                f.flush()
        except (OSError, ValueError, TypeError) as exc:
            self._warn(exc)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a list of values under ``name``."""
        self._record("list", name, list(value) if not isinstance(value, list) else value)

    def log_row(self, name: str, description: str = "", **kwargs: Any) -> None:
        """Append one row (column=value) to the table ``name``."""
        self._record("row", name, kwargs)

    def log_table(self, name: str, value: dict[str, Any], description: str = "") -> None:
        """Log a whole table as a dict of equally long columns."""
        self._record("table", name, dict(value))

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Store an image as the artifact ``images/<name>.png`` (or the file's own name) and record
        it as the metric ``name``: ``path`` is an image file, ``plot`` a matplotlib figure (or
        ``matplotlib.pyplot``)."""
        if (path is None) == (plot is None):
            self._warn(ValueError(f"log_image({name!r}) needs exactly one of path= or plot="))
            return
        if plot is not None:
            import io

            buffer = io.BytesIO()
            try:
                plot.savefig(buffer, format="png")
            except Exception as exc:  # noqa: BLE001 - a script must never fail because of its metrics
                self._warn(exc)
                return
            buffer.seek(0)
            artifact = f"images/{name}.png"
            self.upload_file(artifact, buffer)
        else:
            artifact = f"images/{Path(str(path)).name}"
            self.upload_file(artifact, path)
        self._record("image", name, {"artifact": artifact})

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add properties to the run (stored as tags: string key/value pairs)."""
        self.set_tags(properties)
        self.properties.update(properties)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (string key/value pairs) on the run."""
        self._record("tags", None, {str(k): str(v) for k, v in tags.items()})

    def tag(self, key: str, value: Any = "") -> None:
        """Set one tag."""
        self.set_tags({key: value})

    # -- files and models -----------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: Any) -> None:
        """Store a file (a path or a readable binary stream) as the run artifact ``name``."""
        if self.run_dir is None:
            self._offline(f"upload_file {name}", path_or_stream)
            return
        try:
            parts = str(name).replace("\\", "/").split("/")
            if not name or str(name).startswith("/") or ".." in parts:
                raise ValueError(f"upload name {name!r} must be a relative path without '..'")
            dest = self.run_dir / UPLOADS_DIR / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if hasattr(path_or_stream, "read"):
                with open(dest, "wb") as out:
                    shutil.copyfileobj(path_or_stream, out)
            else:
                shutil.copyfile(path_or_stream, dest)
            self._record("upload", name, str(dest.relative_to(self.run_dir)))
        except (OSError, ValueError, TypeError) as exc:
            self._warn(exc)

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> None:
        """Store every file under the folder ``path`` as the run artifacts ``name/<relative path>``."""
        root = Path(path)
        if not root.is_dir():
            self._warn(ValueError(f"upload_folder({name!r}): {root} is not a folder"))
            return
        for dirpath, _dirs, files in os.walk(root):
            for file in sorted(files):
                full = Path(dirpath, file)
                if full.is_symlink():
                    continue  # never follow a link out of the folder
                self.upload_file(f"{name.rstrip('/')}/{full.relative_to(root).as_posix()}", full)

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """What this run logged so far, by name: a value logged once, a list of the values of a
        name logged several times (or with log_list), a table {column: [...]} of rows."""
        self.flush()
        records: list[dict[str, Any]] = list(self._offline_records)
        if self.run_dir is not None:
            try:
                with open(self.run_dir / METRICS_FILE, "rb") as f:
                    for line in f:
                        try:
                            rec = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(rec, dict) and rec.get("r") == self._target:
                            records.append(rec)
            except OSError as exc:
                self._warn(exc)
        out: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for rec in records:
            kind, key, value = rec.get("type", "scalar"), rec.get("k"), rec.get("v")
            if key is None or (name is not None and key != name):
                continue
            if kind == "scalar":
                counts[key] = counts.get(key, 0) + 1
                if counts[key] == 1:
                    out[key] = value
                elif counts[key] == 2:
                    out[key] = [out[key], value]
                else:
                    out[key].append(value)
            elif kind == "row":
                table = out.setdefault(key, {})
                for col, v in (value or {}).items():
                    table.setdefault(col, []).append(v)
            elif kind in ("list", "table", "image"):
                out[key] = value
        return out

    def register_model(
        self,
        model_name: str,
        model_path: str = "outputs/model.joblib",
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        cpu: float | None = None,
        memory_gb: float | None = None,
    ) -> None:
        """Ask for ``model_path`` (relative to the run folder) to be registered as ``model_name``.

        The new version is registered when the run completes; a failed or canceled run registers
        nothing.
        """
        request = {
            "name": model_name,
            "path": model_path,
            "tags": tags or {},
            "properties": properties or {},
            "description": description,
            "framework": model_framework,
            "framework_version": model_framework_version,
            "cpu": cpu,
            "memory_gb": memory_gb,
        }
        self._record("register", model_name, request)

    # -- plumbing -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything logged so far to the run folder."""
        f = self._file
        if f is not None:
            try:
                with self._lock:
                    f.flush()
            except (OSError, ValueError):
                pass

    def _record(self, kind: str, name: str | None, value: Any, step: int | None = None) -> None:
        rec: dict[str, Any] = {"t": _now(), "v": value}
        if kind != "scalar":
            rec["type"] = kind
        if name is not None:
            rec["k"] = str(name)
        if step is not None:
            rec["s"] = int(step)
        if self._file is None:
            self._offline_records.append(rec)
            self._offline(f"{kind} {name}" if kind != "scalar" else str(name), value)
            return
        if self._target is not None:
            rec["r"] = self._target
        try:
            self._file.write(_dumps(rec) + "\n")
            self.flush()
        except (OSError, ValueError, TypeError) as exc:
            self._warn(exc)

    @staticmethod
    def _scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if hasattr(value, "__index__"):
            return str(value.__index__())
        if isinstance(value, str):
            return _dumps(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return _dumps(str(value))
        return _dumps(number)

    @staticmethod
    def _offline(name: str, value: Any) -> None:
        print(f"[mltrain offline run] {name}: {value}", flush=True)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(f"mltrain: could not record a metric: {exc}", file=sys.stderr)

    def _install_sigterm_flush(self) -> None:
        """Flush on SIGTERM when the script has not set its own handler, then die as before."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return

            def _on_term(signum: int, frame: Any) -> None:
                self.flush()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

            signal.signal(signal.SIGTERM, _on_term)
        except (ValueError, OSError):
            pass
