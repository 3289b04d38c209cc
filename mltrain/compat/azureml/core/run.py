"""``azureml.core.Run`` (SDK v1) on top of mltrain's in-script API.

``Run.get_context()`` is the mltrain run the script belongs to (an offline run that prints
outside mltrain, as Azure's); metrics, tables, images, tags, properties, uploads and model
registrations are recorded into it. ``complete``/``fail`` are no-ops (the run's status follows the
script's exit code); anything else of the SDK raises NotSupportedByMltrain naming the method.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mltrain.run_context import Run as _MltrainRun

from ._unsupported import unsupported
from .experiment import Experiment
from .model import Model, refuse_datasets
from .resource_configuration import ResourceConfiguration

_INPUT_PREFIX = "MLTRAIN_INPUT_"  # where mltrain puts each input's path (mltrain.remote.inputs.ENV_INPUT)

SUPPORTED = (
    "get_context",
    "id",
    "experiment",
    "parent",
    "properties",
    "input_datasets",
    "log",
    "log_list",
    "log_row",
    "log_table",
    "log_image",
    "log_confusion_matrix",
    "log_accuracy_table",
    "tag",
    "set_tags",
    "get_tags",
    "add_properties",
    "get_properties",
    "upload_file",
    "upload_files",
    "upload_folder",
    "get_metrics",
    "register_model",
    "complete",
    "fail",
    "flush",
)


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError(f"{what} takes a dict or its JSON text, got {type(value).__name__}")
    return value


def _note(text: str) -> None:
    print(f"mltrain: {text}", file=sys.stderr, flush=True)


class Run:
    """The run a script belongs to; use :meth:`get_context`."""

    _context: Run | None = None

    def __init__(self, run: _MltrainRun | None = None, *args: Any, **kwargs: Any) -> None:
        if not isinstance(run, _MltrainRun):
            raise unsupported("Run(experiment, run_id)", "use Run.get_context() inside the training script")
        self._run = run
        self._properties: dict[str, Any] = dict(run.properties)

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> Run:
        """The current run: the mltrain run of this job, else an offline run."""
        if cls._context is None:
            cls._context = cls(_MltrainRun.get_context(allow_offline=allow_offline))
        return cls._context

    # -- identity ---------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._run.id

    @property
    def experiment(self) -> Experiment:
        return Experiment(self._run.experiment_name)

    @property
    def parent(self) -> Run | None:
        parent = self._run.parent
        return None if parent is None else Run(parent)

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def input_datasets(self) -> dict[str, str]:
        """The job's inputs by name (``job.inputs.NAME``): where each is for this script (a path, or the
        URI of a ``direct`` input), as Azure ML v1 gives a named ``as_mount()`` / ``as_download()`` input."""
        return {k[len(_INPUT_PREFIX) :]: v for k, v in os.environ.items() if k.startswith(_INPUT_PREFIX)}

    def get_properties(self) -> dict[str, Any]:
        return dict(self._properties)

    def get_tags(self) -> dict[str, Any]:
        return dict(getattr(self, "_tags", {}))

    # -- metrics ----------------------------------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        self._run.log(name, value, step=step)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._run.log_list(name, value)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._run.log_row(name, **kwargs)

    def log_table(self, name: str, value: dict[str, Any], description: str = "") -> None:
        self._run.log_table(name, value)

    def log_image(self, name: str, path: str | None = None, plot: Any = None, description: str = "") -> None:
        self._run.log_image(name, path=path, plot=plot)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """Azure's confusion-matrix JSON (``data.class_labels``, ``data.matrix`` rows = actual) as a
        table: an ``actual`` column and one column per predicted class."""
        data = _as_dict(value, "log_confusion_matrix").get("data", value)
        labels = [str(label) for label in data["class_labels"]]
        matrix = data["matrix"]
        table: dict[str, list[Any]] = {"actual": labels}
        for j, label in enumerate(labels):
            table[label] = [row[j] for row in matrix]
        self._run.log_table(name, table)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        """Azure's accuracy-table JSON as a table of (class, threshold, tp, fp, tn, fn) rows."""
        data = _as_dict(value, "log_accuracy_table").get("data", value)
        labels = [str(label) for label in data["class_labels"]]
        thresholds = data["probability_thresholds"]
        columns: dict[str, list[Any]] = {k: [] for k in ("class", "threshold", "tp", "fp", "tn", "fn")}
        for label, rows in zip(labels, data["probability_tables"], strict=True):
            for threshold, (tp, fp, tn, fn) in zip(thresholds, rows, strict=True):
                for key, v in zip(columns, (label, threshold, tp, fp, tn, fn), strict=True):
                    columns[key].append(v)
        self._run.log_table(name, columns)

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: Any = None, populate: bool = False
    ) -> dict[str, Any]:
        return self._run.get_metrics(name)

    # -- tags and properties ----------------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._tags = {**getattr(self, "_tags", {}), **tags}
        self._run.set_tags(tags)

    def add_properties(self, properties: dict[str, Any]) -> None:
        self._properties.update(properties)
        self._run.add_properties(properties)

    # -- files and models -------------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: Any, datastore_name: Any = None) -> None:
        self._run.upload_file(name, path_or_stream)

    def upload_files(self, names: list[str], paths: list[str], **kwargs: Any) -> None:
        for name, path in zip(names, paths, strict=True):
            self._run.upload_file(name, path)

    def upload_folder(self, name: str, path: str, datastore_name: Any = None) -> None:
        self._run.upload_folder(name, path)

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
        resource_configuration: ResourceConfiguration | None = None,
        **kwargs: Any,
    ) -> Model:
        """Register ``model_path`` (relative to the run folder, e.g. ``outputs/model.joblib``) as a
        new version of ``model_name`` when the run completes."""
        refuse_datasets(datasets, sample_input_dataset, sample_output_dataset, kwargs)
        resources = resource_configuration or ResourceConfiguration()
        path = model_path or "outputs"
        self._run.register_model(
            model_name,
            path,
            tags=tags,
            properties=properties,
            description=description,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            cpu=resources.cpu,
            memory_gb=resources.memory_in_gb,
        )
        return Model._requested(model_name, path, dict(tags or {}), dict(properties or {}))

    # -- lifecycle --------------------------------------------------------------------------------
    def complete(self, _set_status: bool = True) -> None:
        _note("run.complete() does nothing: the run completes when the script exits with code 0")

    def fail(self, error_details: Any = None, error_code: Any = None, _set_status: bool = True) -> None:
        _note("run.fail() does nothing: the run fails when the script exits with a non-zero code")

    def flush(self) -> None:
        self._run.flush()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unsupported(f"Run.{name}", "supported: " + ", ".join(SUPPORTED))

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment.name!r})"
