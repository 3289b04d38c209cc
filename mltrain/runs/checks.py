"""Checks of a job's config that need the file system, made before anything is recorded or run."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mltrain.errors import ConfigError
from mltrain.workspace.names import check_name


def check_script(source: Path, script: str) -> str:
    """``script`` if it is a relative path that stays inside ``source`` (symlinks resolved), else ConfigError."""
    if (
        not script
        or PurePosixPath(script).is_absolute()
        or PureWindowsPath(script).is_absolute()
        or ".." in PurePosixPath(script.replace("\\", "/")).parts
    ):
        raise ConfigError(
            f"job.script {script!r} must be a relative path inside job.source_dir ({source})",
            hint="put the script in job.source_dir and give its path relative to it, e.g. job.script=train.py",
        )
    resolved = (source / script).resolve()
    if source.resolve() not in resolved.parents:
        raise ConfigError(
            f"job.script {script!r} resolves to {resolved}, outside job.source_dir ({source})",
            hint="the script must be a file of the snapshotted folder: copy it into job.source_dir",
        )
    return script


def check_job(config: dict[str, Any], source: Path) -> str:
    """The job's script, checked (see :func:`check_script`), after checking the experiment name."""
    check_name(str(config.get("experiment_name") or ""), "experiment")
    return check_script(source, str(config["job"]["script"]))
