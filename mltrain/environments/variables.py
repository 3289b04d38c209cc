"""Environment variables whose values come from the environment at run time, so a secret never
enters a record.

A value of ``job.env_vars`` or ``environment.env_vars`` that reads the environment
(``${oc.env:NAME}``, ``${oc.env:NAME,default}``, possibly with text around it) is kept as written in the
resolved config (:func:`plain_config`), so the run's record, the environment's spec, ``runs show`` and
the dashboard show the reference, never the value. It is read (:func:`read_references`) from the
environment of the process that starts the job, when the job's (or the build's) environment
variables are handed to the compute target; a variable that is not set is a ConfigError naming the
key, before anything is recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mltrain.errors import ConfigError

ENV_PATHS = ("job.env_vars", "environment.env_vars")  # mappings whose references are kept as written
_REFERENCE = re.compile(r"(?<!\\)\$\{oc\.env:\s*([^,}\s]+)\s*(,[^}]*)?\}")  # not an escaped \${


def is_reference(value: Any) -> bool:
    """Whether ``value`` reads the environment (``${oc.env:...}``; or holds it escaped, ``\\${...}``, which
    is read as the text itself, also at run time)."""
    return isinstance(value, str) and "${oc.env:" in value


def read_references(values: Mapping[str, Any], where: str) -> dict[str, str]:
    """``values`` (env vars of ``where``, e.g. ``job.env_vars``) as strings, each ``${oc.env:...}`` read
    from this process's environment now; a variable that resolves to null is left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if not is_reference(value):
            out[str(key)] = str(value)
            continue
        text = _read(str(value), f"{where}.{key}")
        if text is not None:
            out[str(key)] = text
    return out


def _read(value: str, key: str) -> str | None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for match in _REFERENCE.finditer(value):
        name, default = match.group(1), match.group(2)
        if default is None and name not in os.environ:
            raise ConfigError(
                f"{key} reads the environment variable {name}, which is not set",
                hint=f"set {name} in the environment that runs mltrain, or give a default: ${{oc.env:{name},VALUE}}",
            )
    try:
        got = OmegaConf.create({"value": value}).value
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"{key}: {value!r} cannot be read at run time ({str(exc).splitlines()[0]})",
            hint="a value read from the environment holds ${oc.env:NAME} (or ${oc.env:NAME,default}) and text only",
        ) from None
    return None if got is None else str(got)


def as_written(overrides: Any) -> list[str]:
    """Hydra's list of command-line overrides (``hydra.overrides.task``) as the user wrote them: an
    element is never resolved, so ``+job.env_vars.X=${oc.env:NAME}`` is not read (nor recorded)."""
    from omegaconf import ListConfig, OmegaConf

    items = OmegaConf.to_container(overrides, resolve=False) if isinstance(overrides, ListConfig) else overrides
    return [str(o) for o in items or []]


def plain_config(cfg: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The top-level ``keys`` of the composed OmegaConf ``cfg`` as plain resolved containers, except
    the values under :data:`ENV_PATHS` that read the environment: those are kept as written, once
    checked to be readable now."""
    from omegaconf import Container, OmegaConf

    keys = [str(k) for k in keys]
    kept: dict[str, dict[str, str]] = {}
    for path in ENV_PATHS:
        if path.split(".", 1)[0] not in keys:
            continue
        node = OmegaConf.select(cfg, path, default=None)
        raw = OmegaConf.to_container(node, resolve=False) if isinstance(node, Container) else None
        if isinstance(raw, dict):
            kept[path] = {str(k): v for k, v in raw.items() if is_reference(v)}
            read_references(kept[path], path)  # a missing variable: a clear error before anything else
    out: dict[str, Any] = {}
    for key in keys:
        value = cfg[key]
        out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
    for path, references in kept.items():
        section, name = path.split(".", 1)
        target = out[section].get(name) if isinstance(out.get(section), dict) else None
        if isinstance(target, dict):
            target.update(references)
    return out
