"""Turn Hydra/OmegaConf composition errors into messages that name the key and the valid choices."""

from __future__ import annotations

from mltrain.bundled import bundled_dir
from mltrain.config.overrides import project_conf_dir


def _valid_keys(node: object) -> list[str]:
    keys = getattr(node, "keys", None)
    if not callable(keys):
        return []
    try:
        return sorted(str(k) for k in keys() if k != "hydra")
    except Exception:  # noqa: BLE001 - a broken node just has no hint
        return []


def config_groups() -> list[str]:
    """The config groups a user can select (built in, plus the project's own ``conf/``)."""
    import os

    roots = [bundled_dir("conf")]
    project = project_conf_dir()
    if os.path.isdir(project):
        from pathlib import Path

        roots.append(Path(project))
    return sorted({p.name for root in roots for p in root.iterdir() if p.is_dir() and p.name != "hydra"})


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` (mltrain's and the project's ./conf or $MLTRAIN_PROJECT_CONF),
    typed schemas left out."""
    from pathlib import Path

    roots = [
        bundled_dir("conf") / group,
        Path(project_conf_dir()) / group,
    ]
    return sorted({p.stem for root in roots if root.is_dir() for p in root.glob("*.yaml")})


def describe_config_error(exc: BaseException) -> str:
    """A user-facing description of a composition error, with the valid choices where known."""
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    lines = [str(exc).strip() or type(exc).__name__]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OmegaConfBaseException):
        detail = str(cause).strip()
        if detail and detail not in lines[0]:
            lines.append(detail)
        if isinstance(cause, ConfigKeyError) or "not in struct" in detail or "not in '" in detail:
            valid = _valid_keys(getattr(cause, "parent_node", None))
            where = getattr(cause, "full_key", None) or ""
            parent = where.rsplit(".", 1)[0] if "." in where else "the top level"
            if valid:
                lines.append(f"Valid keys under {parent}: {', '.join(valid)}")
    elif "No match in the defaults list" in lines[0]:
        lines.append(f"Config groups: {', '.join(config_groups())}")
    elif "Config group override must be a string" in lines[0]:
        lines.append("~GROUP drops a config group's selection (~register: no registration)")
    return "\n".join(lines)


def report_config_error(exc: BaseException) -> int:
    """Print a composition error and return the exit code for it."""
    from mltrain.errors import MltrainError
    from mltrain.text import print_error

    if isinstance(exc, MltrainError):
        print_error(exc)
        return exc.exit_code
    print_error(describe_config_error(exc), "mltrain: config error: ")
    return 2
