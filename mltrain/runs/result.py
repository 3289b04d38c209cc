"""What a finished trial reports: its record's final state plus what the driver did after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.workspace.runs import CANCELED, COMPLETED, FAILED

if TYPE_CHECKING:
    from mltrain.workspace.models import ModelVersion

EXIT_CODES = {COMPLETED: 0, FAILED: 1, CANCELED: 130}


@dataclass
class RunResult:
    run_id: str
    experiment: str
    status: str
    run_dir: Path
    duration_s: float
    exit_code: int | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)  # which of the metrics the script logged as MLflow params
    models: list[ModelVersion] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # registration / deployment errors
    compute: str = "local"
    node: str | None = None  # where the job ran, when the target tells (the job reference's ``node``)
    endpoint: dict[str, Any] | None = None

    @property
    def process_exit_code(self) -> int:
        code = EXIT_CODES.get(self.status, 1)
        return code if code or not self.problems else 1
