"""Values of a config that are resolved when and where the job runs, not when the config is composed.

Environment variables whose values come from the environment at run time, so a secret never
enters a record.

A value of ``job.env_vars`` or ``environment.env_vars`` that reads the environment
(``${oc.env:NAME}``, ``${oc.env:NAME,default}``, possibly with text around it) is kept as written in the
resolved config (:func:`plain_config`), so the run's record, the environment's spec, ``runs show`` and
the dashboard show the reference, never the value. It is read (:func:`read_references`) from the
environment of the process that starts the job, when the job's (or the build's) environment
variables are handed to the compute target; a variable that is not set is a ConfigError naming the
key, before anything is recorded.

``${inputs.NAME}`` and ``${outputs.NAME}`` (in ``job.arguments``, ``job.args``, ``job.env_vars``) name where
an input or output of the job is on the compute target that runs it: :func:`plain_config` keeps them as
written (the record shows them so), and the target resolves them (``RunSpec.argv``). One that names no
input or output of ``job.inputs`` / ``job.outputs`` is a ConfigError listing those.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mltrain.errors import ConfigError
from mltrain.remote.placeholders import PLACEHOLDER

ENV_PATHS = ("job.env_vars", "environment.env_vars")  # mappings whose references are kept as written
IO_PATHS = ("job.arguments", "job.args", "job.env_vars")  # where ${inputs.NAME} / ${outputs.NAME} may be written
IO_KINDS = ("inputs", "outputs")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    with io_placeholders(cfg):
        for key in keys:
            value = cfg[key]
            out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
    for path, references in kept.items():
        section, name = path.split(".", 1)
        target = out[section].get(name) if isinstance(out.get(section), dict) else None
        if isinstance(target, dict):
            target.update(references)
    return out


def io_names(job: Mapping[str, Any] | None, kind: str) -> list[str]:
    """The names of ``job.inputs`` or ``job.outputs`` (``kind``), each checked to be an identifier."""
    node = (job or {}).get(kind) or {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"job.{kind} is {node!r}, not a mapping", hint=f"write job.{kind}.NAME.path=...")
    names = [str(n) for n in node]
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise ConfigError(
                f"job.{kind}.{name}: {name!r} is not a name for an {kind[:-1]}",
                hint="use letters, digits and _ (not first a digit): it becomes ${"
                + f"{kind}.NAME}} and MLTRAIN_{kind[:-1].upper()}_NAME",
            )
    return names


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def check_placeholders(job: Mapping[str, Any]) -> None:
    """Each ``${inputs.NAME}`` / ``${outputs.NAME}`` of ``job.arguments``, ``args`` and ``env_vars`` names a
    declared input or output; ConfigError listing the declared ones otherwise."""
    declared = {kind: io_names(job, kind) for kind in IO_KINDS}
    for path in IO_PATHS:
        for text in _strings(job.get(path.split(".", 1)[1])):
            for m in PLACEHOLDER.finditer(text):
                kind, name = m.group(1), m.group(2)
                if name not in declared[kind]:
                    known = ", ".join(declared[kind]) or "none"
                    raise ConfigError(
                        f"{path} refers to ${{{kind}.{name}}}, but the job has no {kind[:-1]} {name!r} "
                        f"(job.{kind}: {known})",
                        hint=f"declare it, e.g. +job.{kind}.{name}.path=data:NAME, or fix the name",
                    )


@contextmanager
def io_placeholders(cfg: Any) -> Iterator[None]:
    """Inside the block, ``${inputs.NAME}`` / ``${outputs.NAME}`` of the composed ``cfg`` resolve to
    themselves (top-level nodes holding each declared name escaped), once checked by
    :func:`check_placeholders`; ``cfg`` is as it was afterwards."""
    from omegaconf import Container, OmegaConf, open_dict

    job = OmegaConf.select(cfg, "job", default=None)
    raw = OmegaConf.to_container(job, resolve=False) if isinstance(job, Container) else None
    if not isinstance(raw, dict) or any(k in cfg for k in IO_KINDS):
        yield
        return
    check_placeholders(raw)
    declared = {kind: io_names(raw, kind) for kind in IO_KINDS}
    if not any(declared.values()):  # a job without data (most): nothing to add, cfg left untouched
        yield
        return
    with open_dict(cfg):
        for kind in IO_KINDS:
            cfg[kind] = {name: "\\${" + f"{kind}.{name}}}" for name in declared[kind]}
    try:
        yield
    finally:
        with open_dict(cfg):
            for kind in IO_KINDS:
                del cfg[kind]
