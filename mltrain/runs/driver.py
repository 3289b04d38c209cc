"""The driver of ``python -m mltrain``: a resolved config becomes a plan with one trial, run and summed up.

Everything that can be checked is checked while the plan is built, before the run is recorded, so a
config error leaves no trace. ``prewarm`` does the config-independent start-up work while the
prefork child composes the config (mltrain/config/prefork.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mltrain.errors import MltrainError
from mltrain.runs.control import RunCanceled
from mltrain.runs.plan import RunPlan, open_workspace, workspace_settings
from mltrain.runs.result import EXIT_CODES
from mltrain.runs.trial import Trial
from mltrain.text import print_error
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import CANCELED

PREWARM_MODULES = (
    "mltrain.compute.local",
    "mltrain.environments.builders",
    "mltrain.environments.conda",
    "mltrain.environments.resolve",
    "mltrain.environments.shim",
    "mltrain.environments.spec",
    "mltrain.environments.system",
    "mltrain.environments.venv",
    "mltrain.runs.checks",
    "mltrain.runs.compat",
    "mltrain.runs.finalize",
    "mltrain.runs.ingest",
    "mltrain.runs.output",
    "mltrain.runs.recovery",
    "mltrain.runs.summary",
    "mltrain.runs.trial",
    "mltrain.workspace.environments",
    "mltrain.workspace.snapshots",
    "pathspec",
    "subprocess",
)


# the registry's modules, unless the command line turns registration off (`~register`; a request from
# the script imports them when it comes)
REGISTER_MODULES = ("mltrain.registry.from_run", "mltrain.registry.store")


def target_modules(name: str) -> tuple[str, ...]:
    """The modules of a compute target named by an override (``+compute=ssh``): paramiko's (slow to
    import) only where it connects, when there is no OpenSSH client."""
    if name != "ssh":
        return ()
    from mltrain.compute.ssh import openssh

    return ("mltrain.compute.ssh",) if openssh.client() else ("mltrain.compute.ssh", "fabric")


def prewarm(argv: list[str] | None = None) -> Workspace | None:
    """Import the modules a run uses (and those of a compute target ``argv`` selects) and open the
    default workspace when it already exists (nothing is created where the config may point
    elsewhere); return that workspace."""
    import importlib

    from mltrain.runs import preconnect

    early = preconnect.begun()  # the SSH hosts of this command line's last run, connected meanwhile
    chosen = {a.lstrip("+~").split("=", 1)[1] for a in argv or () if a.lstrip("+~").startswith("compute=")}
    chosen |= {"ssh"} if early else set()
    registers = not any(a.split("=", 1)[0] == "~register" for a in argv or ())
    # the target's client library first: an early connection needs it at once
    modules = tuple(m for c in sorted(chosen) for m in target_modules(c)) + PREWARM_MODULES
    for name in modules + (REGISTER_MODULES if registers else ()):
        importlib.import_module(name)
    return open_default_workspace()


def end_prewarm() -> None:
    """Release what ``prewarm`` started and no run took (early SSH connections)."""
    from mltrain.runs import preconnect

    preconnect.end()


def open_default_workspace() -> Workspace | None:
    """The default workspace when it already exists (nothing is created where the config may point
    elsewhere), else None."""
    settings = WorkspaceSettings.resolve()
    if settings.db_url.startswith("sqlite:///") and Path(settings.db_url.removeprefix("sqlite:///")).is_file():
        try:
            return Workspace(settings)
        except MltrainError:  # an empty or damaged database: reported when the run opens it
            return None
    return None


def workspace_for(config: dict[str, Any], prewarmed: Workspace | None) -> Workspace:
    """The workspace of ``config``: ``prewarmed`` when it is that one, else opened now."""
    w = config["workspace"]
    if prewarmed is not None and prewarmed.settings == WorkspaceSettings.resolve(
        w["root"], w["db_url"], w["artifact_root"]
    ):
        return prewarmed
    if prewarmed is not None:  # not this run's: its connections closed now (its objects are never collected)
        prewarmed.db.dispose()
    return open_workspace(config)


def run_from_config(
    config: dict[str, Any], overrides: list[str] | None = None, prewarmed: Workspace | None = None
) -> int:
    """Run the job of a resolved ``config`` (plain containers), print its summary; return the exit code."""
    from mltrain.runs import preconnect

    preconnect.remember(config.get("compute"))
    try:
        return _run(config, overrides, prewarmed)
    finally:
        preconnect.end()


def _run(config: dict[str, Any], overrides: list[str] | None, prewarmed: Workspace | None) -> int:
    from mltrain.runs.summary import print_summary
    from mltrain.workspace import discard_new, is_new

    settings = workspace_settings(config)
    new = is_new(settings)  # a run refused by its checks leaves no workspace behind
    try:
        with RunPlan.build(config, workspace_for(config, prewarmed)) as plan:
            result = Trial(plan, plan.config, overrides or []).run()
    except (MltrainError, RunCanceled) as exc:
        if isinstance(exc, MltrainError):
            print_error(exc)
        else:
            print(f"mltrain: {exc}; nothing was run", file=sys.stderr)
        if new:
            discard_new(settings)
        return exc.exit_code if isinstance(exc, MltrainError) else EXIT_CODES[CANCELED]
    print_summary(result)
    return result.process_exit_code
