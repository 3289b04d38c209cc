"""``python -m mltrain -m sweep.resume=SWEEP``: a sweep resumed by its id alone is run with the
overrides it was started with (its job, search space, sweep values and settings), as Ray's
``Tuner.restore(path)`` needs only the path.

The whole original command may be repeated instead, in any order; overrides that differ from the
record are refused, naming the differences. How the sweep runs (:data:`RUN_KEYS`) may be set anew
either way. A secret given on the command line (``compute.token``) is not stored, so it is given again.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from typing import TYPE_CHECKING

from mltrain.errors import ConfigError

if TYPE_CHECKING:
    from mltrain.workspace import Workspace, WorkspaceSettings

RESUME_KEY = "sweep.resume"
RUN_KEYS = (  # how a sweep runs, not which trials it runs: may differ when it is resumed
    "sweep.max_concurrent_runs",
    "sweep.max_duration_s",
    "sweep.fail_fast",
    "sweep.prewarm",
    "sweep.prewarm_modules",
)


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_argv(argv: list[str]) -> list[str]:
    """``argv`` (Hydra's command line) with the recorded overrides of the sweep that ``sweep.resume``
    names; ``argv`` itself when it resumes nothing (or is not a command line Hydra reads)."""
    if not any(RESUME_KEY in a for a in argv):
        return argv
    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(argv)
    except SystemExit:
        return argv  # Hydra reports it
    given = [str(o) for o in args.overrides]
    resume = [o for o in given if key_of(o) == RESUME_KEY and "=" in o]
    if not resume:
        return argv
    sweep_id = resume[-1].split("=", 1)[1].strip().strip("'\"")
    if not sweep_id or sweep_id == "null":
        return argv
    if not args.multirun:
        raise ConfigError(
            f"{RESUME_KEY}={sweep_id} continues a sweep, and sweeps run with -m",
            hint=f"python -m mltrain -m {RESUME_KEY}={sweep_id}",
        )
    rest = [o for o in given if key_of(o) != RESUME_KEY]
    ws = _workspace(rest)
    try:
        recorded = recorded_overrides(ws, sweep_id)
    finally:
        ws.db.dispose()
    options = list(argv)
    for override in given:
        options.remove(override)
    return [*options, *merge(recorded, rest, sweep_id), resume[-1]]


def _workspace(overrides: list[str]) -> Workspace:
    """The workspace the command runs in (read only)."""
    from mltrain.workspace import Workspace

    return Workspace(workspace_settings(overrides), create=False)


def workspace_settings(overrides: list[str]) -> WorkspaceSettings:
    """Where the command with ``overrides`` records: its config composed with its ``workspace.*`` overrides."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mltrain.bundled import bundled_dir
    from mltrain.workspace import WorkspaceSettings

    chosen = [o for o in overrides if key_of(o).startswith("workspace.")]
    with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3", job_name="mltrain"):
        w = OmegaConf.to_container(compose("config", overrides=chosen).workspace, resolve=True)
    assert isinstance(w, dict)
    return WorkspaceSettings.resolve(w["root"], w["db_url"], w["artifact_root"])


def recorded_overrides(ws: Workspace, sweep_id: str) -> list[str]:
    """The command-line overrides sweep ``sweep_id`` was started with, as the user gave them."""
    from mltrain.config.overrides import user_overrides
    from mltrain.runs.sweep.tags import SWEEP_TAG

    run = ws.runs.get(sweep_id)
    if ws.runs.tags(run["id"]).get(SWEEP_TAG) != "parent":
        raise ConfigError(f"run {run['id']} is not a sweep", hint=f"give {RESUME_KEY} the id of a sweep's parent run")
    return user_overrides([o for o in run["overrides"] or [] if key_of(o) != RESUME_KEY])


def merge(recorded: list[str], given: list[str], sweep_id: str) -> list[str]:
    """The overrides a resumed sweep runs with: ``recorded`` when ``given`` sets only :data:`RUN_KEYS`
    (and Hydra's own settings, which are not recorded), else ``given``, which must hold the same
    overrides (a secret stored redacted matches any value of its key); ``given``'s RUN_KEYS replace
    the recorded ones."""
    from mltrain.compute.configs import REDACTED

    hydra = [o for o in given if key_of(o).startswith(("hydra.", "hydra/"))]  # Hydra's own: never recorded
    run_given = [o for o in given if key_of(o) in RUN_KEYS]
    defining = [o for o in given if key_of(o) not in RUN_KEYS and o not in hydra]
    kept_run = [o for o in recorded if key_of(o) in RUN_KEYS and key_of(o) not in {key_of(g) for g in run_given}]
    record = [o for o in recorded if key_of(o) not in RUN_KEYS]
    secret = {key_of(o) for o in record if o.endswith(f"={REDACTED}")}
    if not defining:
        if secret:
            raise ConfigError(
                f"sweep {sweep_id} was started with {', '.join(sorted(secret))} on the command line, which is "
                "not stored",
                hint=f"repeat the sweep's overrides with its value: {' '.join(record)}",
            )
        return [*record, *kept_run, *run_given, *hydra]
    missing = Counter(o for o in record if key_of(o) not in secret) - Counter(defining)
    missing.update(k for k in secret if k not in {key_of(o) for o in defining})
    extra = Counter(o for o in defining if key_of(o) not in secret) - Counter(record)
    if missing or extra:
        differences = [
            *(f"missing {o}" for o in missing.elements()),
            *(f"not in the sweep: {o}" for o in extra.elements()),
        ]
        raise ConfigError(
            f"sweep {sweep_id} was started with other overrides ({'; '.join(differences)})",
            hint=f"give {RESUME_KEY}={sweep_id} alone to continue it with its own: {' '.join(record) or '(none)'}",
        )
    return [*defining, *kept_run, *run_given, *hydra]
