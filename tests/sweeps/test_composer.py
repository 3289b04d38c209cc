"""The composer of sweep trials gives what Hydra's loader gives (``load_sweep_config``), though it
composes a defaults list once for the trials that share it and applies their value overrides to copies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf

from mltrain.environments.variables import as_written
from mltrain.errors import ConfigError
from mltrain.runs.sweep.compose import VERIFIED_WITH, TrialComposer, task_container

SAME = [  # trials that give the same config both ways
    ["environment=system", "job.arguments.penalty=0.5"],
    ["environment=system", "job.arguments.penalty=1e-3", "job.arguments.kernel='a,b'"],
    ["environment=system", 'job.arguments.kernel="it\'s"', "+job.arguments.l=[1,2]"],
    ["environment=system", "+job.arguments.trial=${hydra:job.num}", "experiment_name=${job.name}-x"],
    ["environment=system", "++job.arguments.penalty=3", "++job.arguments.new=x"],
    ["environment=system", "~job.arguments.kernel"],
    ["environment=system", "~job.arguments.kernel=rbf"],
    ["environment=system", "job.arguments={kernel:linear}"],
    ["environment=system", "job.arguments=null"],
    ["environment=system", "job.args=[1,2]", "+job.env_vars.H=${oc.env:HOME}", "+job.env_vars.A='1'"],
    ["+compute=local", "compute.cancel_grace_s=2"],
    ["~register", "job.arguments.penalty=2"],
    ["+sweep=random", "sweep.seed=3", "job.arguments.penalty=0.25"],
    ["+hydra.job.env_set.X=1", "job.arguments.penalty=2"],
    ["environment=system", "job.arguments.penalty=0.75"],  # the first's defaults list again
]
REFUSED = [  # trials both refuse, with Hydra's message
    (["environment=system", "job.arguments.nope=1"], "Could not override 'job.arguments.nope'"),
    (["environment=system", "+job.arguments.kernel=linear"], "Could not append to config"),
    (["environment=system", "~job.arguments.nope"], "Could not delete from config"),
    (["environment=system", "~job.arguments.kernel=linear"], "Could not delete from config"),
    (["environment=system", "job.snapshot.max_files=many"], "job.snapshot.max_files=many"),
    (["environment=system", "job.arguments.penalty=1,2"], "Ambiguous value for argument"),
]


class CountingLoader:
    """Hydra's config loader, counting its compositions."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.loads = 0

    def load_sweep_config(self, master: Any, overrides: list[str]) -> Any:
        self.loads += 1
        return self.loader.load_sweep_config(master, overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


@pytest.fixture
def loader(project) -> Iterator[tuple[Any, Any]]:
    """(Hydra's config loader of ``python -m mltrain``, the multirun config of a sweep)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mltrain.bundled import bundled_dir
    from mltrain.config.app import prepare_hydra

    prepare_hydra()
    with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3", job_name="mltrain"):
        loader = GlobalHydra.instance().config_loader()
        yield loader, loader.load_configuration("config", ["environment=system"], RunMode.MULTIRUN)


def fresh(loader: Any, master: Any, overrides: list[str], number: int) -> tuple[dict, list[str], Any]:
    """What Hydra's loader composes for a trial: (task config, task overrides, Hydra's config)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    full = loader.load_sweep_config(master, overrides)
    with open_dict(full):
        full.hydra.job.num = full.hydra.job.id = number
    HydraConfig.instance().set_config(full)
    return task_container(full), as_written(full.hydra.overrides.task), full.hydra


def raw(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=False)


def test_the_composer_was_verified_with_this_hydra():
    assert hydra.__version__ == VERIFIED_WITH, (
        f"the trial composer (mltrain/runs/sweep/compose.py) was checked against Hydra {VERIFIED_WITH}, "
        f"this is Hydra {hydra.__version__}: run tests/sweeps/test_composer.py, check that the composer "
        "still applies value overrides as Hydra's loader does, then set VERIFIED_WITH"
    )


def test_trials_compose_as_hydra_composes_them(loader, hydra_restore_singletons):
    hydra_loader, master = loader
    counting = CountingLoader(hydra_loader)
    with TrialComposer(counting, master) as composer:
        composer.base()
        for number, overrides in enumerate(SAME):
            config, task_overrides = composer.compose(overrides, number)
            task, _, _ = composer.composed[number]
            unresolved = raw(task)
            expected, expected_overrides, hydra_cfg = fresh(hydra_loader, master, overrides, number)
            assert (config, task_overrides) == (expected, expected_overrides), overrides
            full = hydra_loader.load_sweep_config(master, overrides)
            assert unresolved == raw(OmegaConf.masked_copy(full, list(task))), overrides
            made = composer.hydra_config(number).hydra
            assert as_written(made.overrides.task) == as_written(hydra_cfg.overrides.task), overrides
            assert raw(made.job)["override_dirname"] == raw(hydra_cfg.job)["override_dirname"], overrides
            assert made.job.num == number
    assert config["job"]["arguments"]["penalty"] == 0.75
    # one composition per defaults list: environment=system, +compute=local, ~register, +sweep=random and
    # +hydra.job.env_set.X=1 (Hydra's own config)
    assert counting.loads == 5


def test_hydra_interpolations_resolve_per_trial(loader, hydra_restore_singletons):
    hydra_loader, master = loader
    with TrialComposer(hydra_loader, master) as composer:
        composer.base()
        numbers = [composer.compose(["+job.arguments.trial=${hydra:job.num}"], n)[0] for n in (4, 5)]
    assert [c["job"]["arguments"]["trial"] for c in numbers] == [4, 5]


@pytest.mark.parametrize("overrides, message", REFUSED)
def test_trials_hydra_refuses_are_refused_with_hydras_message(loader, hydra_restore_singletons, overrides, message):
    hydra_loader, master = loader
    with pytest.raises(Exception) as hydras:  # noqa: B017 - whichever Hydra raises
        hydra_loader.load_sweep_config(master, overrides)
    with TrialComposer(hydra_loader, master) as composer:
        composer.base()
        with pytest.raises(ConfigError) as ours:
            composer.compose(overrides, 0)
    assert message in str(ours.value) and message in f"{hydras.value} {hydras.value.__cause__}"
