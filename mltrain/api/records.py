"""The records the Python API returns: frozen dataclasses built from the stores' rows, with ``to_dict()``;
a list of them is a :class:`Records` with ``to_pandas()`` (when pandas is installed). ``rec["field"]``
reads a field too, as the stores' rows do."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from mltrain.registry.version import ModelVersion
    from mltrain.workspace import Workspace as Store

T = TypeVar("T", bound="Record")


class Record:
    """Base of the API's records: ``to_dict()`` and ``rec["field"]``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def __getitem__(self, name: str) -> Any:
        if name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        return getattr(self, name)

    @classmethod
    def from_row(cls: type[T], row: Mapping[str, Any], **extra: Any) -> T:
        """The record of a store's row (unknown columns ignored, ``extra`` fields added)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in {**dict(row), **extra}.items() if k in names})


class Records(list, Generic[T]):  # type: ignore[type-arg]
    """A list of records; ``to_pandas()`` gives a DataFrame with a column per field."""

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self]

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use to_dicts())") from exc
        return pd.DataFrame(self.to_dicts())


def records(items: Iterable[T]) -> Records[T]:
    return Records(items)


@dataclass(frozen=True)
class RunRecord(Record):
    """A run as recorded: ids, status, times, what ran where, and (when read with them) its last metrics
    and tags."""

    id: str
    experiment: str
    status: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    parent_run_id: str | None = None
    script: str | None = None
    arguments: list[str] | None = None
    overrides: list[str] | None = None
    compute: str | None = None
    env_name: str | None = None
    env_hash: str | None = None
    snapshot_id: str | None = None
    source_dir: str | None = None
    run_dir: str | None = None
    git_commit: str | None = None
    exit_code: int | None = None
    error: str | None = None
    problems: list[str] | None = None
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.created_at


def run_record(store: Store, row: Mapping[str, Any]) -> RunRecord:
    """The record of a run's row, with its last metrics and tags."""
    return RunRecord.from_row(row, metrics=store.metrics.summary(row["id"]), tags=store.runs.tags(row["id"]))


@dataclass(frozen=True)
class MetricPoint(Record):
    """One logged value of a metric: its step (None when logged without one), value and time."""

    step: int | None
    value: Any
    ts: float


@dataclass(frozen=True)
class ModelRecord(Record):
    """A registered model version."""

    name: str
    version: int
    path: str
    sha256: str
    format: str
    framework: str | None = None
    framework_version: str | None = None
    description: str | None = None
    cpu: float | None = None
    memory_gb: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    env_hash: str | None = None
    created_at: float = 0.0
    archived: bool = False
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def model_record(mv: ModelVersion) -> ModelRecord:
    return ModelRecord.from_row(vars(mv))


@dataclass(frozen=True)
class EndpointRecord(Record):
    """An endpoint (a served model): its live state, URIs and the keys made when it was deployed (keys
    are stored hashed: shown only then)."""

    name: str
    state: str
    model: str
    target: str
    uri: str | None = None
    scoring_uri: str | None = None
    swagger_uri: str | None = None
    auth: bool = True
    reason: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    cpu: float | None = None
    memory_gb: float | None = None


@dataclass(frozen=True)
class EnvironmentRecord(Record):
    """A built environment: name, content hash, builder, Python, where it lives and when it was used."""

    name: str
    hash: str
    builder: str
    python: str | None = None
    location: str | None = None
    size_bytes: int | None = None
    created_at: float | None = None
    last_used_at: float | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None
