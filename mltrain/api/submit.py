"""``mltrain.submit`` / ``mltrain.sweep`` / ``mltrain.rerun``: runs started from Python, detached.

A run is composed exactly as ``python -m mltrain OVERRIDES`` composes it (the same app, in this
process: a config error is raised here), checked, recorded Queued, and driven by a process of its own
(:mod:`mltrain.runs.detach`, started first so its start-up overlaps composing), so it outlives the
notebook or script that started it. A sweep is the
whole ``python -m mltrain -m OVERRIDES`` command detached. ``wait=True`` waits for the end, the
output shown as it comes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mltrain.api.run import Run, Sweep

if TYPE_CHECKING:
    from mltrain.api.workspace import Workspace

PathLike = str | os.PathLike[str]


def submit(*overrides: str, config_dir: PathLike | None = None, wait: bool = False, show_output: bool = True) -> Run:
    """Start the run ``python -m mltrain *overrides`` would run (``config_dir``: the project's config
    folder, default ``./conf``); its :class:`Run`. ConfigError (before anything is recorded) when the
    config does not compose or its checks fail. ``wait``: return once it ended, its output printed
    when ``show_output`` (an interrupt of the wait cancels the run)."""
    from mltrain.config.compose import compose_job
    from mltrain.runs.detach import Driver, start
    from mltrain.runs.plan import check_config, open_workspace

    with Driver() as driver:  # its interpreter starts up while the config is composed; exits unused on an error
        composed = compose_job(list(overrides), config_dir)
        check_config(composed.config)
        store = open_workspace(composed.config)
        started = start(store, composed.config, composed.overrides, composed.env, driver=driver)
    run = Run(store, started.run_id)
    if wait:
        _wait(run, show_output)
    return run


def _wait(run: Run, show_output: bool) -> None:
    """Wait for a run started with ``wait=True``: interrupting the wait (Ctrl-C, a notebook's interrupt)
    cancels the run, as Ctrl-C does to ``python -m mltrain``."""
    try:
        run.wait(show_output=show_output)
    except KeyboardInterrupt:
        run.cancel()
        raise


def sweep(*overrides: str, config_dir: PathLike | None = None, wait: bool = False, show_output: bool = True) -> Sweep:
    """Start the sweep ``python -m mltrain -m *overrides`` would run, detached; its :class:`Sweep` once
    the sweep run is recorded. ConfigError with the command's message when it ends before that."""
    from mltrain.config.compose import PROJECT_CONF_ENV, workspace_settings
    from mltrain.runs.detach import DetachedCommand
    from mltrain.workspace import Workspace as Store

    env = {PROJECT_CONF_ENV: os.path.abspath(os.fspath(config_dir))} if config_dir is not None else None
    command = DetachedCommand(["-m", *overrides], env=env)
    store = Store(workspace_settings(list(overrides), config_dir))  # while the command starts
    handle = Sweep(store, command.run_id())
    if wait:
        _wait(handle, show_output)
    return handle


def rerun(
    run_id: str, *overrides: str, workspace: Workspace | None = None, wait: bool = False, show_output: bool = True
) -> Run:
    """Run ``run_id`` again from its record (``mltrain runs rerun``), detached; the new run."""
    from mltrain.api.workspace import Workspace

    return (workspace or Workspace()).run(run_id).rerun(*overrides, wait=wait, show_output=show_output)


def config_options(group: str) -> list[str]:
    """The options of config group ``group`` (``environment``, ``compute``, ...): mltrain's and the
    project's own (``./conf`` or ``$MLTRAIN_PROJECT_CONF``), typed schemas left out."""
    from mltrain.config.errors import group_options

    return [o for o in group_options(group) if not o.endswith("_schema")]
