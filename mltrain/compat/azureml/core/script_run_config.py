"""``azureml.core.ScriptRunConfig``: what to run (folder, script, arguments), where and in what: the
``job``, ``compute`` and ``environment`` of an mltrain run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._api import quoted
from ._unsupported import unsupported


class ScriptRunConfig:
    """``source_directory`` is snapshotted and ``script`` runs in a copy of it with ``arguments`` as given."""

    def __init__(
        self,
        source_directory: str | os.PathLike[str] = ".",
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: Any = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = None,
        command: Any = None,
        docker_runtime_config: Any = None,
    ) -> None:
        for arg, given in (
            ("run_config", run_config),
            ("distributed_job_config", distributed_job_config),
            ("resume_from", resume_from),
            ("command", command),
            ("docker_runtime_config", docker_runtime_config),
        ):
            if given is not None:
                raise unsupported(
                    f"ScriptRunConfig({arg}=...)",
                    "give source_directory, script, arguments, compute_target and environment; "
                    "other settings are config keys (job.*, compute.*)",
                )
        if not script:
            raise ValueError("ScriptRunConfig needs script= (the training script inside source_directory)")
        self.source_directory = str(Path(source_directory).expanduser().resolve())
        self.script = script
        self.arguments = list(arguments or [])
        self.compute_target = compute_target
        self.environment = environment
        self.max_run_duration_seconds = max_run_duration_seconds

    def overrides(self, workspace_root: Path, arguments: bool = True) -> list[str]:
        """The overrides of a run of this config (recorded in ``workspace_root``); ``arguments=False``
        leaves the script's arguments to the caller (a sweep sets them as a mapping)."""
        from .compute import target_overrides

        out = [
            f"job.source_dir={quoted(self.source_directory)}",
            f"job.script={quoted(self.script)}",
            "~register",  # Azure registers what the notebook asks for, after the run
        ]
        if arguments:
            out.append("job.arguments=[" + ",".join(quoted(a, always=True) for a in self.arguments) + "]")
        if self.max_run_duration_seconds:
            out.append(f"job.max_run_duration_s={float(self.max_run_duration_seconds)}")
        out += target_overrides(self.compute_target)
        if self.environment is not None:
            out += self.environment.overrides(workspace_root)
        return out

    def _submit(self, experiment: Any) -> Any:
        """Start a run of this config in ``experiment`` (``Experiment.submit``)."""
        from .script_run import ScriptRun

        ws = experiment.workspace
        run = ws._api.submit(*self.overrides(ws._ws.path), f"experiment_name={quoted(experiment.name)}")
        return ScriptRun(experiment, run)

    def arguments_mapping(self) -> dict[str, Any]:
        """The arguments as ``--name value`` pairs (a bare ``--flag`` is true), for a sweep to add to."""
        out: dict[str, Any] = {}
        args = [str(a) for a in self.arguments]
        i = 0
        while i < len(args):
            arg = args[i]
            if not arg.startswith("--") or len(arg) < 3:
                raise unsupported(
                    f"HyperDriveConfig over a script with the argument {arg!r}",
                    "write the script's arguments as --name value pairs",
                )
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[arg[2:]] = args[i + 1]
                i += 2
            else:
                out[arg[2:]] = True
                i += 1
        return out

    def __repr__(self) -> str:
        return f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r})"
