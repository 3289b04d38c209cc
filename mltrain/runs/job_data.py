"""A job's resolved inputs and outputs as a run plan holds them (light: the run path of a job without data
imports nothing of :mod:`mltrain.runs.inputs`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from mltrain.compute.data_io import InputSpec, OutputSpec
    from mltrain.data.configs import OutputConfig
    from mltrain.workspace.data import DataVersion


def has_data(job: Mapping[str, Any]) -> bool:
    """Whether ``job`` declares inputs or outputs."""
    return bool(job.get("inputs") or job.get("outputs"))


# NamedTuples, not frozen dataclasses: every run defines them (~1 ms of start-up less)
class JobInput(NamedTuple):
    """An input as the run records it: the spec handed to the target and the version it reads (if any)."""

    spec: InputSpec
    version: DataVersion | None

    @property
    def digest(self) -> str | None:
        return self.spec.digest


class JobData(NamedTuple):
    """A job's resolved inputs and its outputs."""

    inputs: tuple[JobInput, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    output_configs: Mapping[str, OutputConfig] | None = None

    @property
    def input_specs(self) -> tuple[InputSpec, ...]:
        return tuple(i.spec for i in self.inputs)


def pin_inputs(config: dict[str, Any], data: JobData) -> dict[str, Any]:
    """``config`` as a run records it: each ``job.inputs.NAME.path`` that names a data version by its
    latest or an alias pinned to the version the run read (``data:NAME:VERSION``), so a rerun reads it too."""
    pinned = {i.spec.name: i.version.ref for i in data.inputs if i.version is not None}
    inputs = (config.get("job") or {}).get("inputs") or {}
    if not pinned or not isinstance(inputs, dict):
        return config
    new_inputs = {}
    for name, node in inputs.items():
        entry = {"path": node} if isinstance(node, str) else dict(node)
        if name in pinned:
            entry["path"] = pinned[name]
        new_inputs[name] = entry
    return {**config, "job": {**config["job"], "inputs": new_inputs}}
