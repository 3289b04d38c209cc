"""``azureml.core.script_run.ScriptRun``: a submitted run, followed from the notebook that submitted it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..exceptions import ActivityFailedException
from ._unsupported import unsupported

SUPPORTED = (
    "id",
    "experiment",
    "wait_for_completion",
    "get_status",
    "get_details",
    "get_metrics",
    "get_tags",
    "tag",
    "get_file_names",
    "download_file",
    "download_files",
    "register_model",
    "cancel",
)


class ScriptRun:
    """A run started by ``Experiment.submit``."""

    def __init__(self, experiment: Any, run: Any) -> None:
        self.experiment = experiment
        self._run = run  # mltrain.api.Run

    @property
    def id(self) -> str:
        return str(self._run.id)

    @property
    def status(self) -> str:
        return self.get_status()

    def get_status(self) -> str:
        """Queued, Preparing, Running, Finalizing, Completed, Failed or Canceled (Azure's names)."""
        return str(self._run.status)

    def wait_for_completion(
        self, show_output: bool = False, wait_post_processing: bool = False, raise_on_error: bool = True
    ) -> dict[str, Any]:
        """Wait for the run to end (its output printed with ``show_output``); its details.
        ActivityFailedException when it failed or was canceled and ``raise_on_error``."""
        status = self._run.wait(show_output=show_output)
        details = self.get_details()
        if raise_on_error and status != "Completed":
            error = (details.get("error") or {}).get("error", {}).get("message") or status
            raise ActivityFailedException(f"run {self.id} {status}: {error}")
        return details

    def get_details(self) -> dict[str, Any]:
        """Azure's run details: id, target, status, times, definition (script, arguments, environment),
        log files, error."""
        from datetime import datetime, timezone

        rec = self._run.record

        def utc(ts: float | None) -> str | None:
            return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()

        details: dict[str, Any] = {
            "runId": rec.id,
            "target": rec.compute,
            "status": rec.status,
            "startTimeUtc": utc(rec.started_at),
            "endTimeUtc": utc(rec.ended_at),
            "properties": dict(rec.tags),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": {
                "script": rec.script,
                "arguments": list(rec.arguments or []),
                "environment": {"name": rec.env_name},
                "target": rec.compute,
            },
            "logFiles": {p: str(Path(rec.run_dir or ".") / p) for p in self.get_file_names() if p.startswith("logs/")},
        }
        if rec.error:
            details["error"] = {"error": {"message": rec.error}}
        return details

    def get_metrics(self, name: str | None = None, recursive: bool = False, **kwargs: Any) -> dict[str, Any]:
        """As Azure's: a metric logged once is its value, a metric logged several times the list of its
        values; tables, rows and images as mltrain stores them."""
        summary = self._run.record.metrics
        series = self._run.metrics() if name is None else {name: self._run.metrics(name)}
        out: dict[str, Any] = {}
        for key, points in series.items():
            scalars = [p.value for p in points if not isinstance(p.value, (dict, list))]
            if len(scalars) == len(points) and len(points) > 1:
                out[key] = scalars
            elif key in summary:
                out[key] = summary[key]
        return out

    def get_tags(self) -> dict[str, str]:
        return dict(self._run.tags)

    def tag(self, key: str, value: Any = None) -> None:
        self._run.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._run.set_tags(tags)

    @property
    def properties(self) -> dict[str, str]:
        return self.get_tags()

    def get_file_names(self) -> list[str]:
        return self._run.file_names()

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        """The run's file ``name`` (e.g. ``outputs/model.joblib``), verified, to ``output_file_path``
        (a file or folder; default: its base name here)."""
        import shutil
        import tempfile

        if name not in self.get_file_names():
            raise ValueError(f"run {self.id} has no file {name!r} (get_file_names() lists them)")
        with tempfile.TemporaryDirectory() as tmp:
            self._run.outputs(tmp, only=[name])
            target = Path(output_file_path or Path(name).name)
            if target.is_dir():
                target = target / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(tmp) / name), target)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike[str] | None = None,
        output_paths: list[str] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        **kwargs: Any,
    ) -> None:
        """The run's files under ``prefix`` (every file by default), verified, into ``output_directory``."""
        names = [n for n in self.get_file_names() if prefix is None or n.startswith(prefix)]
        self._run.outputs(output_directory or ".", only=names)

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Register the run's file (or folder) ``model_path`` as the next version of ``model_name``."""
        from .model import Model, refuse_datasets

        refuse_datasets(datasets, sample_input_dataset, sample_output_dataset, kwargs)
        resources = resource_configuration
        record = self._run.register_model(
            model_name,
            model_path or "outputs",
            framework=model_framework,
            framework_version=model_framework_version,
            description=description,
            cpu=getattr(resources, "cpu", None),
            memory_gb=getattr(resources, "memory_in_gb", None),
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            properties={str(k): str(v) for k, v in (properties or {}).items()},
        )
        return Model._of(self.experiment.workspace, record)

    def cancel(self) -> None:
        self._run.cancel()

    def get_children(self, **kwargs: Any) -> Any:
        return iter(())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise unsupported(f"Run.{name}", "supported on a submitted run: " + ", ".join(SUPPORTED))

    def __repr__(self) -> str:
        return f"Run(experiment={self.experiment.name!r}, id={self.id!r}, status={self.get_status()!r})"
