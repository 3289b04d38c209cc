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

from mltrain.errors import ConfigError, MltrainError, WorkspaceError

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


def recorded_environment(ws: Workspace, env_config: dict[str, Any], env_hash: str) -> ResolvedEnvironment | None:
    """The environment a run ran in (spec and lock) when the workspace still knows a lock giving
    ``env_hash``: its record of the built environment, else the stored lock of the spec."""
    from mltrain.environments.records import list_environments
    from mltrain.environments.resolve import ResolvedEnvironment, stored_lock
    from mltrain.environments.spec import EnvSpec

    for rec in list_environments(ws):
        if rec["hash"] != env_hash:
            continue
        s = rec["spec"]
        spec = EnvSpec(
            name=str(s.get("name") or env_config.get("name") or "unnamed"),
            build=str(s.get("build") or "venv"),
            python=str(s.get("python")),
            requirements=tuple(s.get("requirements") or ()),
            env_vars=dict(env_config.get("env_vars") or s.get("env_vars") or {}),
            base_image=s.get("base_image"),
            docker_network=str((env_config.get("docker") or {}).get("network") or "host"),
            version=s.get("version"),
            sources=dict(s.get("sources") or {}),
        )
        env = ResolvedEnvironment(spec, rec["lock"] or "")
        if env.hash == env_hash:
            return env
    try:
        spec = EnvSpec.from_config(env_config, base_dir=Path.cwd())
    except MltrainError:
        return None
    if spec.build == "system":
        env = ResolvedEnvironment(spec, "")
        return env if env.hash == env_hash else None
    found = stored_lock(ws, spec.spec_hash)
    if found is not None and ResolvedEnvironment(spec, found[0]).hash == env_hash:
        return ResolvedEnvironment(spec, found[0])
    return None


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
    """Everything a rerun of ``run_id`` needs, checked; nothing is recorded."""
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
    return Rerun(config, overrides, env, source, run["id"])
