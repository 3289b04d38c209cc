"""The config of ``python -m mltrain OVERRIDES``, composed in this process (the Python API).

``compose_job`` runs the very app the command runs (:class:`mltrain.config.app.App`, the same Hydra
tree, the project's ``conf/``, the same expansion of overrides and checks), with a handoff that
receives the composed job instead of running it. A composition error is raised as ConfigError with
the message the command prints; the process's ``sys.argv`` and environment are left as they were.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mltrain.errors import ConfigError, MltrainError

if TYPE_CHECKING:
    from mltrain.workspace import WorkspaceSettings

PROJECT_CONF_ENV = "MLTRAIN_PROJECT_CONF"


@dataclass(frozen=True)
class ComposedJob:
    """A composed single run: its resolved config (plain containers), the user's overrides as given and
    ``hydra.job.env_set``."""

    config: dict[str, Any]
    overrides: list[str]
    env: dict[str, str] = field(default_factory=dict)


@contextmanager
def project_conf(config_dir: str | os.PathLike[str] | None) -> Iterator[None]:
    """``config_dir`` as the project's config folder (``MLTRAIN_PROJECT_CONF``) inside the block."""
    if config_dir is None:
        yield
        return
    old = os.environ.get(PROJECT_CONF_ENV)
    os.environ[PROJECT_CONF_ENV] = os.path.abspath(os.fspath(config_dir))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PROJECT_CONF_ENV, None)
        else:
            os.environ[PROJECT_CONF_ENV] = old


def compose_job(overrides: list[str], config_dir: str | os.PathLike[str] | None = None) -> ComposedJob:
    """The job ``python -m mltrain OVERRIDES`` would run (in this process's folder); ConfigError when it
    does not compose, naming the key and the valid choices as the command does."""
    from mltrain.config.app import App
    from mltrain.config.errors import describe_config_error

    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        raise ConfigError(
            f"{bad[0]!r}: options are not overrides",
            hint="give overrides only (KEY=VALUE, +GROUP=OPTION); sweeps: mltrain.sweep(...)",
        )
    got: list[ComposedJob] = []

    def handoff(config: dict[str, Any], given: list[str], env_set: dict[str, str]) -> None:
        got.append(ComposedJob(config, given, env_set))

    argv, environ = list(sys.argv), dict(os.environ)
    try:
        with project_conf(config_dir):
            os.environ["HYDRA_FULL_ERROR"] = "1"  # App.main raises what it would print
            App(handoff=handoff).main(list(overrides))
    except MltrainError:
        raise
    except Exception as exc:  # noqa: BLE001 - every composition error becomes a ConfigError
        raise ConfigError(describe_config_error(exc)) from exc
    finally:
        sys.argv[:] = argv
        for key in set(os.environ) - set(environ):  # hydra.job.env_set is the run's, not this process's
            del os.environ[key]
        for key, value in environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    if not got:
        raise ConfigError(f"the overrides {' '.join(overrides)} compose no single run", hint="use mltrain.sweep(...)")
    return got[0]


def workspace_settings(overrides: list[str], config_dir: str | os.PathLike[str] | None = None) -> WorkspaceSettings:
    """Where ``python -m mltrain OVERRIDES`` records (also for ``-m`` overrides, which do not compose as
    one run): the config composed with the ``workspace.*`` overrides alone."""
    from mltrain.config.app import prepare_hydra
    from mltrain.config.resume import workspace_settings as settings_of

    prepare_hydra()
    with project_conf(config_dir):
        return settings_of([o for o in overrides if not o.startswith("-")])
