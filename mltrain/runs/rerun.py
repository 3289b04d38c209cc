"""``mltrain runs rerun ID [OVERRIDES]``: a recorded run again, from its record alone.

The new run gets the old one's resolved config and overrides (the given overrides applied on top),
its source restored from the snapshot (every blob checked against its hash), the environment lock it
ran with (the workspace's record of that environment, else the stored lock of its spec, as long as
it gives the recorded environment hash), and the same compute target unless an override changes it.
It is tagged ``mltrain.rerun_of``. What the record lacks (a pruned blob, a lock no longer kept) is
refused before anything is recorded, naming what is missing.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ConfigError, WorkspaceError

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

RERUN_TAG = "mltrain.rerun_of"
RERUNS_DIR = "reruns"  # <workspace>/reruns/<token>: the restored sources of reruns
Compose = Callable[[list[str]], dict[str, Any]]  # overrides -> the resolved config they compose today


@dataclass(frozen=True)
class Rerun:
    """What a rerun runs: the config (source folder set to the restored snapshot), its overrides, the
    recorded environment (None when the overrides changed the environment) and the original run."""

    config: dict[str, Any]
    overrides: list[str]
    env: ResolvedEnvironment | None
    source: Path
    rerun_of: str

    @property
    def tags(self) -> dict[str, str]:
        return {RERUN_TAG: self.rerun_of}

    @property
    def env_hash(self) -> str | None:
        """The recorded environment's hash, which the rerun runs in (None: resolved anew)."""
        return None if self.env is None else self.env.hash


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _path(config: dict[str, Any], dotted: str) -> tuple[dict[str, Any] | None, str]:
    node: Any = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), parts[-1]


def apply_overrides(
    config: dict[str, Any], recorded: list[str], given: list[str], compose: Compose
) -> tuple[dict[str, Any], list[str]]:
    """``config`` (a run's resolved config) with each of ``given`` applied as the command line would
    set it, and the overrides the new run records. The values come from composing the recorded
    overrides plus ``given`` (a given key replaces the recorded ones under it), so a group option
    (``+compute=docker``) brings its whole node."""
    if not given:
        return copy.deepcopy(config), list(recorded)
    keys = {key_of(o) for o in given}
    kept = [o for o in recorded if not any(key_of(o) == k or key_of(o).startswith(k + ".") for k in keys)]
    overrides = [*kept, *given]
    composed = compose(overrides)
    out = copy.deepcopy(config)
    for key in dict.fromkeys(key_of(o).replace("/", ".") for o in given):
        if key.startswith("hydra."):
            continue
        source, leaf = _path(composed, key)
        target, tleaf = _path(out, key)
        if target is None:
            parent = key.rsplit(".", 1)[0]
            raise ConfigError(f"cannot set {key}: the recorded config has no {parent}", hint="check the key")
        if source is not None and leaf in source:
            target[tleaf] = copy.deepcopy(source[leaf])
        else:
            target.pop(tleaf, None)
    return out, overrides


def restore_source(ws: Workspace, run: dict[str, Any]) -> Path:
    """The run's snapshot restored into a fresh folder under ``<workspace>/reruns``; WorkspaceError naming
    the run and what is missing when a blob is gone or changed."""
    import shutil

    snapshot_id = run.get("snapshot_id")
    if not snapshot_id:
        raise WorkspaceError(
            f"run {run['id']} cannot be rerun: it has no snapshot (it never started)",
            hint="rerun a run that started, or start it anew with python -m mltrain",
        )
    dest = ws.root / RERUNS_DIR / f"{run['id']}-{secrets.token_hex(3)}"
    try:
        ws.snapshots.restore(snapshot_id, dest)
    except WorkspaceError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise WorkspaceError(
            f"run {run['id']} cannot be rerun: its snapshot {snapshot_id} cannot be restored: {exc.message}",
            hint="the blob was pruned or damaged; restore the workspace's blobs from a backup "
            "(`mltrain workspace check` lists what is missing)",
        ) from exc
    return dest


def prepare_rerun(ws: Workspace, run_id: str, given: list[str], compose: Compose) -> Rerun:
    """Everything a rerun of ``run_id`` needs, checked (:func:`~mltrain.runs.plan.check_config`); nothing is
    recorded."""
    from mltrain.runs.plan import check_config

    run = ws.runs.get(run_id)
    if ws.runs.list(parent_run_id=run["id"], limit=1):
        raise ConfigError(
            f"run {run['id']} is a sweep: rerun one of its children, or continue it",
            hint=f"python -m mltrain -m sweep.resume={run['id']}",
        )
    if not run.get("config") or not run.get("env_hash"):
        raise WorkspaceError(
            f"run {run['id']} cannot be rerun: its record has no resolved config or environment (it never started)",
            hint="start it anew with python -m mltrain",
        )
    config, overrides = apply_overrides(run["config"], list(run.get("overrides") or []), given, compose)
    from mltrain.environments.records import recorded_environment

    env = None
    if config.get("environment") == run["config"].get("environment"):
        env = recorded_environment(ws, config["environment"], run["env_hash"])
        if env is None:
            raise WorkspaceError(
                f"run {run['id']} cannot be rerun: the lock of its environment {run.get('env_name')} "
                f"({run['env_hash'][:12]}) is no longer in the workspace",
                hint="rerun it with environment.rebuild=true to lock and build its spec anew",
            )
    source = restore_source(ws, run)
    config["job"]["source_dir"] = str(source)
    check_config(config)
    return Rerun(config, overrides, env, source, run["id"])


def start_rerun(ws: Workspace, rerun: Rerun) -> str:
    """Record the rerun and start its detached driver; its run id."""
    from mltrain.runs.detach import start

    return start(ws, rerun.config, rerun.overrides, {}, tags=rerun.tags, env_hash=rerun.env_hash).run_id


def run_rerun(ws: Workspace, rerun: Rerun) -> int:
    """Record the rerun and run it in this process (its output shown, its summary printed); the exit code."""
    import os

    from mltrain.runs.detach import record_queued, run_recorded

    run_id, _ = record_queued(ws, rerun.config, rerun.overrides, os.getpid(), rerun.tags)
    return run_recorded(ws, rerun.config, rerun.overrides, run_id, resolved=rerun.env)
