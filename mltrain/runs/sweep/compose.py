"""Composition of a sweep's trials on Hydra's public API.

A trial's config is what ``config_loader.load_sweep_config(config, overrides)`` gives (as Hydra's
launchers compose theirs). Composing one takes ~0.1 s, which dominates small trials (the 32-trial
iris sweep of ``bench/sweep.py``), so the trials that select the same config groups share one
composition of their defaults list, onto a copy of whose task part each applies its own value
overrides as Hydra's loader does after composing: with Hydra's override parser and OmegaConf's
``update``. Anything the copy cannot take as Hydra would (a sweep value, a package, a key that is not
there) is composed afresh by Hydra, which gives its own error. ``tests/sweeps/test_composer.py``
checks that both ways give the same config, for the Hydra version in :data:`VERIFIED_WITH`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from mltrain.environments.variables import as_written
from mltrain.errors import ConfigError
from mltrain.runs.sweep.settings import SweepConfig, as_settings

if TYPE_CHECKING:
    from hydra.core.config_loader import ConfigLoader
    from hydra.core.override_parser.types import Override
    from omegaconf import DictConfig

VERIFIED_WITH = "1.3.8"  # the Hydra version whose loader the cached composition was checked against


class TrialComposer:
    """Composes the trials of the sweep of ``config`` (Hydra's multirun config) in one thread, which
    holds ``HydraConfig`` (read by ``${hydra:...}``) for the trial it composes; use as a context
    manager, which gives ``HydraConfig`` back as it found it."""

    def __init__(self, loader: ConfigLoader, config: DictConfig) -> None:
        self.loader = loader
        self.config = config
        self.composed: dict[int, tuple[DictConfig, DictConfig, list[str]]] = {}  # number -> task, full, overrides
        self._templates: dict[tuple[str, ...], tuple[DictConfig, DictConfig]] = {}  # group lines -> full, task
        self._parsed: dict[str, tuple[Override, bool]] = {}  # line -> (parsed, composed with the defaults)
        self._groups: dict[str, bool] = {}
        self._parser: Any = None
        self._current: Any = None  # the composed config HydraConfig holds
        self._held: Any = None  # what HydraConfig holds for it
        self._original: Any = None

    def __enter__(self) -> TrialComposer:
        from hydra.core.hydra_config import HydraConfig

        self._original = HydraConfig.instance().cfg
        return self

    def __exit__(self, *exc: object) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().cfg = self._original

    def base(self) -> tuple[dict[str, Any], list[str], SweepConfig]:
        """The sweep's own task config, its command-line overrides and its typed settings (resolved
        while ``HydraConfig`` holds the sweep's config, as a trial's are while it holds the trial's).
        ``sweep.resume`` is taken as written: Hydra's grammar would read a run id such as
        ``20261201_142333_208e23`` as a number."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        HydraConfig.instance().set_config(self.config)
        self._current, self._held = self.config, HydraConfig.instance().cfg
        config, overrides = task_container(self.config), as_written(self.config.hydra.overrides.task)
        node = self.config.get("sweep")
        settings = as_settings(OmegaConf.to_object(node) if node is not None else None)
        for override in overrides:
            key, _, value = override.partition("=")
            if key.lstrip("+") == "sweep.resume" and value and isinstance(config.get("sweep"), dict):
                config["sweep"]["resume"] = settings.resume = value.strip("'\"")
        return config, overrides, settings

    def compose(self, overrides: list[str], number: int) -> tuple[dict[str, Any], list[str]]:
        """The resolved task config of trial ``number`` and its task overrides."""
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        try:
            task, full, task_overrides = self._load(list(overrides), number)
            container = task_container(task)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(f"cannot compose the trial {' '.join(overrides)}: {exc}") from exc
        self.composed[number] = (task, full, task_overrides)
        return container, task_overrides

    def _load(self, overrides: list[str], number: int) -> tuple[DictConfig, DictConfig, list[str]]:
        parsed = [self._parse(line) for line in overrides]
        if any(o.is_sweep_override() for o, _ in parsed):
            return self._fresh(overrides, number)
        key = tuple(o.input_line or "" for o, composed in parsed if composed)
        entry = self._templates.get(key)
        if entry is None:
            full = self._loaded(list(key), number)
            entry = self._templates[key] = (full, _task_part(full))
        full, template = entry
        task = copy.deepcopy(template)
        try:
            apply_overrides(task, [o for o, composed in parsed if not composed])
        except Exception:  # noqa: BLE001 - not as Hydra would take it: Hydra composes it and says why
            return self._fresh(overrides, number)
        self._hold(full, number)
        return task, full, [o.input_line or "" for o, _ in parsed if not o.is_hydra_override()]

    def _fresh(self, overrides: list[str], number: int) -> tuple[DictConfig, DictConfig, list[str]]:
        full = self._loaded(overrides, number)
        return _task_part(full), full, as_written(full.hydra.overrides.task)

    def _loaded(self, overrides: list[str], number: int) -> DictConfig:
        from omegaconf import open_dict

        full = self.loader.load_sweep_config(self.config, overrides)
        with open_dict(full):
            full.hydra.job.id = full.hydra.job.num = number
        self._hold(full, number)
        return full

    def _hold(self, full: DictConfig, number: int) -> None:
        """Let ``HydraConfig`` hold ``full``, numbered ``number``."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import read_write

        held = HydraConfig.instance().cfg
        if self._current is not full or held is None or held is not self._held:
            HydraConfig.instance().set_config(full)
            self._current, self._held = full, HydraConfig.instance().cfg
            held = self._held
        assert held is not None
        with read_write(held.hydra.job):
            held.hydra.job.num = held.hydra.job.id = number

    def _parse(self, line: str) -> tuple[Override, bool]:
        """``line`` parsed, and whether it is composed with the defaults list (a config group, a
        package or Hydra's own config) rather than applied to a copy of the composed task config."""
        if line not in self._parsed:
            from hydra.core.override_parser.overrides_parser import OverridesParser

            if self._parser is None:
                self._parser = OverridesParser.create()
            override = self._parser.parse_overrides([line])[0]
            composed = override.is_hydra_override() or override.package is not None
            if not composed and not override.is_sweep_override() and not isinstance(override.value(), dict):
                composed = self._is_group(override.key_or_group)
            self._parsed[line] = (override, composed)
        return self._parsed[line]

    def _is_group(self, key: str) -> bool:
        if key not in self._groups:
            self._groups[key] = any(source.is_group(key) for source in self.loader.get_sources())
        return self._groups[key]

    def hydra_config(self, number: int) -> DictConfig | None:
        """Hydra's config of composed trial ``number`` as Hydra's loader makes it (its task overrides,
        number and ``override_dirname``); None when it was not composed."""
        from omegaconf import OmegaConf, open_dict, read_write

        if number not in self.composed:
            return None
        _, full, task_overrides = self.composed[number]
        hydra = copy.deepcopy(full.hydra)
        with read_write(hydra), open_dict(hydra):
            hydra.overrides.task = task_overrides
            hydra.job.num = hydra.job.id = number
            names = hydra.job.config.override_dirname
            hydra.job.override_dirname = override_dirname(
                task_overrides, list(names.exclude_keys), str(names.item_sep), str(names.kv_sep)
            )
        return OmegaConf.create({"hydra": OmegaConf.to_container(hydra)})


def apply_overrides(cfg: DictConfig, overrides: list[Override]) -> None:
    """Apply parsed value overrides to ``cfg`` as Hydra's loader does (``key=v`` sets a key that is
    there, ``+key=v`` adds one, ``++key=v`` sets or adds, ``~key[=v]`` deletes); raises on anything else."""
    from omegaconf import OmegaConf, open_dict

    for override in overrides:
        key, value = override.key_or_group, override.value()
        if override.is_delete():
            current = OmegaConf.select(cfg, key, throw_on_missing=False)
            if current is None or value is not None and value != current:
                raise KeyError(key)
            parent, _, leaf = key.rpartition(".")
            with open_dict(cfg):
                node = OmegaConf.select(cfg, parent) if parent else cfg
                del node[leaf]
        elif override.is_add():
            if OmegaConf.select(cfg, key, throw_on_missing=False) is not None and not isinstance(value, (dict, list)):
                raise KeyError(key)
            OmegaConf.update(cfg, key, value, merge=True, force_add=True)
        else:
            OmegaConf.update(cfg, key, value, merge=True, force_add=override.is_force_add())


def override_dirname(overrides: list[str], exclude_keys: list[str], item_sep: str, kv_sep: str) -> str:
    """``hydra.job.override_dirname`` of task overrides (Hydra's documented format)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    lines = sorted(o.input_line or "" for o in parsed if o.key_or_group not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)


def task_container(config: Any) -> dict[str, Any]:
    """The resolved task part of a composed config (everything but ``hydra``) as plain containers
    (the env vars that read the environment kept as written: :mod:`mltrain.environments.variables`)."""
    from mltrain.environments.variables import plain_config

    return plain_config(config, [k for k in config if k != "hydra"])


def _task_part(full: DictConfig) -> DictConfig:
    """A copy of a composed config without its ``hydra`` node (what a task function receives)."""
    from omegaconf import open_dict

    task = copy.deepcopy(full)
    with open_dict(task):
        del task["hydra"]
    return task
