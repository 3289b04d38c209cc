"""The typed options of a job's data (``job.inputs.NAME``, ``job.outputs.NAME``) and of a datastore chosen
by name (``conf/datastore/NAME.yaml``, a project's own ``conf/`` first).

``job.inputs`` and ``job.outputs`` are open mappings in the Hydra schema (so ``+job.inputs.train.path=...``
works on the command line); :func:`parse_io` checks each entry against :class:`InputConfig` /
:class:`OutputConfig` (unknown keys, modes, types, names) and names the valid choices.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltrain.bundled import bundled_dir
from mltrain.environments.variables import check_placeholders, io_names
from mltrain.errors import ConfigError
from mltrain.workspace.data import PREFIX, TYPES
from mltrain.workspace.datastores import DEFAULT, workspace_node

MODES = ("download", "mount", "direct")


@dataclass(frozen=True)
class InputConfig:
    """``job.inputs.NAME``: data the job reads, at ``${inputs.NAME}`` (and ``MLTRAIN_INPUT_NAME``)."""

    path: str  # data:NAME[:VERSION|@ALIAS], a URI (s3://, gs://, az://, https://, file://) or a local path
    mode: str = "download"  # download: a private copy | mount: read-only, shared | direct: the URI itself
    type: str | None = None  # uri_file | uri_folder; null: what the path is
    datastore: str | None = None  # a URI's datastore (conf/datastore/NAME.yaml); null: the one of its scheme


@dataclass(frozen=True)
class OutputConfig:
    """``job.outputs.NAME``: the folder at ``${outputs.NAME}`` becomes the next version of an asset."""

    path: str  # data:NAME
    datastore: str | None = None  # where its files are stored (conf/datastore/NAME.yaml); null: the workspace
    description: str | None = None  # of each version the job creates

    @property
    def asset(self) -> str:
        return self.path[len(PREFIX) :]


def _entry(kind: str, name: str, node: Any, schema: type[Any]) -> Any:
    where = f"job.{kind}.{name}"
    if isinstance(node, str):  # job.inputs.train=data:iris is short for {path: data:iris}
        node = {"path": node}
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where} is {node!r}", hint=f"write {where}.path=... (and its other keys)")
    fields = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted(set(node) - set(fields))
    if unknown:
        raise ConfigError(f"{where} has no key {unknown[0]!r}", hint=f"valid keys under {where}: {', '.join(fields)}")
    if not isinstance(node.get("path"), str) or not node["path"].strip():
        raise ConfigError(f"{where}.path is not set", hint=f"e.g. +{where}.path=data:NAME")
    values = {k: (None if node[k] is None else str(node[k])) for k in node}
    return schema(**values)


def parse_io(job: Mapping[str, Any]) -> tuple[dict[str, InputConfig], dict[str, OutputConfig]]:
    """``job.inputs`` and ``job.outputs`` checked; ConfigError naming the key and the valid choices."""
    check_placeholders(job)
    inputs = {n: _entry("inputs", n, job["inputs"][n], InputConfig) for n in io_names(job, "inputs")}
    outputs = {n: _entry("outputs", n, job["outputs"][n], OutputConfig) for n in io_names(job, "outputs")}
    for name, cfg in inputs.items():
        if cfg.mode not in MODES:
            raise ConfigError(f"job.inputs.{name}.mode is {cfg.mode!r}", hint=f"use one of {', '.join(MODES)}")
        if cfg.type is not None and cfg.type not in TYPES:
            raise ConfigError(f"job.inputs.{name}.type is {cfg.type!r}", hint=f"use one of {', '.join(TYPES)}")
    for name, out in outputs.items():
        rest = out.path[len(PREFIX) :] if out.path.startswith(PREFIX) else ""
        if not rest or any(c in rest for c in ":@"):
            raise ConfigError(
                f"job.outputs.{name}.path is {out.path!r}; an output becomes a new version of a data asset",
                hint=f"write job.outputs.{name}.path=data:NAME (no version: the run creates the next one)",
            )
    return inputs, outputs


def datastore_names() -> list[str]:
    """The datastores of ``conf/datastore`` (the project's and mltrain's)."""
    roots = [bundled_dir("conf") / "datastore", _project_conf() / "datastore"]
    return sorted({p.stem for root in roots if root.is_dir() for p in root.glob("*.yaml")})


def _project_conf() -> Path:
    return Path(os.path.abspath(os.environ.get("MLTRAIN_PROJECT_CONF") or "conf"))


def _yaml(name: str) -> Path:
    for root in (_project_conf(), bundled_dir("conf")):
        if (root / "datastore" / f"{name}.yaml").is_file():
            return root / "datastore" / f"{name}.yaml"
    raise ConfigError(
        f"no datastore {name!r}",
        hint=f"datastores: {', '.join(datastore_names())} (conf/datastore/NAME.yaml; a project's own conf/ first)",
    )


def datastore_node(name: str | None, overrides: list[str]) -> dict[str, Any] | None:
    """The config node of datastore ``name`` (``conf/datastore/NAME.yaml``, a project's own ``conf/`` first)
    with ``datastore.KEY=VALUE`` overrides, checked against its typed schema; None when none is needed."""
    bad = [o for o in overrides if not o.lstrip("+").startswith("datastore.") or "=" not in o]
    if bad:
        raise ConfigError(f"{bad[0]!r} is not a datastore option", hint="write datastore.KEY=VALUE")
    if name is None:
        return None
    if name == DEFAULT and not overrides:
        return workspace_node()
    from omegaconf import OmegaConf  # here: a command without a named datastore never imports it (0.1 s)
    from omegaconf.errors import OmegaConfBaseException

    from mltrain.workspace.datastores.configs import DATASTORE_SCHEMAS

    path = _yaml(name)
    schemas: list[Any] = []
    base = OmegaConf.create()
    try:
        node = OmegaConf.load(path)
        schemas = [DATASTORE_SCHEMAS[d] for d in node.pop("defaults", None) or [] if str(d) in DATASTORE_SCHEMAS]
        base = OmegaConf.structured(schemas[0]) if schemas else base
        given = OmegaConf.from_dotlist([o.lstrip("+").removeprefix("datastore.") for o in overrides])
        merged = OmegaConf.merge(base, node, given)
        unset = [key for key in merged if OmegaConf.is_missing(merged, key)]
        if unset:
            raise ConfigError(
                f"datastore {name} needs {', '.join(f'datastore.{k}' for k in unset)}",
                hint=f"give it after the name: --datastore {name} datastore.{unset[0]}=VALUE, or in {path}",
            )
        result = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        valid = ", ".join(k for k in base if k != "_target_") if schemas else None
        raise ConfigError(
            f"datastore {name} ({path}): {str(exc).splitlines()[0]}", hint=valid and f"its options: {valid}"
        ) from None
    assert isinstance(result, dict)
    return result
