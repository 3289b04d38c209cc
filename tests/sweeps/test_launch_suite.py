"""mltrain's own launch path: Hydra's multirun of ``python -m mltrain``'s app, whose jobs Hydra's basic
sweeper hands to ``MltrainLauncher.launch`` in batches, checked job by job in the ``JobReturn`` each
gets (its return value, status, config, overrides, Hydra config and working directory) and in the
runs it recorded. A compute target's suite subclasses :class:`LaunchSuite` with its overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig
from sweeptools import the_sweep, workspace, x_of


def multirun(overrides: list[str]) -> tuple[list[JobReturn], int]:
    """Hydra's multirun of mltrain's app in this process with Hydra's basic sweeper (which gives the
    launcher the jobs and returns what it gives back); (the JobReturns of its one batch, the app's
    exit code)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mltrain.bundled import bundled_dir
    from mltrain.config.app import App, prepare_hydra

    prepare_hydra()
    app = App()
    with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3", job_name="mltrain"):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        batches = hydra.multirun("config", app.task, ["hydra/sweeper=basic", *overrides])
    assert len(batches) == 1
    return list(batches[0]), max(app.exit_codes, default=0)


class LaunchSuite:
    @pytest.fixture
    def target(self) -> list[str]:
        """Overrides that select the compute target."""
        return []

    def test_each_job_returns_its_exit_code_config_overrides_and_folder(self, project, curve_job, target):
        overrides = [*curve_job, *target, "+job.arguments.fail_at=2", "job.arguments.x=1,2"]
        returns, code = multirun(overrides)
        assert code == 1  # a child failed
        parent, children = the_sweep(workspace(project))
        by_x = {x_of(c): c for c in children}
        assert [r.return_value for r in returns] == [0, 1]  # each child's exit code, in the jobs' order
        for number, (ret, x) in enumerate(zip(returns, (1, 2), strict=True)):
            assert ret.status == JobStatus.COMPLETED
            assert ret.overrides == [*overrides[:-1], f"job.arguments.x={x}"]
            assert isinstance(ret.cfg, DictConfig) and "hydra" not in ret.cfg
            assert ret.cfg.job.arguments.x == x and ret.cfg.job.script == "curve.py"
            assert ret.hydra_cfg.hydra.job.num == number
            assert list(ret.hydra_cfg.hydra.overrides.task) == ret.overrides
            assert f"job.arguments.x={x}" in ret.hydra_cfg.hydra.job.override_dirname
            assert ret.task_name == ret.hydra_cfg.hydra.job.name == "mltrain"
            assert ret.working_dir == by_x[float(x)]["run_dir"] and Path(ret.working_dir, "outputs").is_dir()
        assert parent["status"] == "Failed" and by_x[1.0]["status"] == "Completed"

    def test_hydra_interpolations_resolve_per_job(self, project, curve_job, target):
        returns, code = multirun(
            [*curve_job, *target, "+job.arguments.hold_after=${hydra:job.num}", "job.arguments.x=1,2"]
        )
        assert code == 0 and [r.return_value for r in returns] == [0, 0]
        _, children = the_sweep(workspace(project))
        argv = {x_of(c): c["arguments"] for c in children}
        assert argv[1.0][argv[1.0].index("--hold_after") + 1] == "0"
        assert argv[2.0][argv[2.0].index("--hold_after") + 1] == "1"

    def test_jobs_a_stopped_sweep_never_started_return_130(self, project, curve_job, target):
        fail_fast = ["sweep.max_concurrent_runs=1", "sweep.fail_fast=true", "+job.arguments.fail_at=1"]
        returns, code = multirun([*curve_job, *target, *fail_fast, "job.arguments.x=1,2,3"])
        assert code == 1
        assert [r.return_value for r in returns] == [1, 130, 130]
        assert all(r.status == JobStatus.COMPLETED for r in returns)
        _, children = the_sweep(workspace(project))
        assert [(x_of(c), c["status"]) for c in children] == [(1.0, "Failed")]


@pytest.mark.usefixtures("hydra_restore_singletons")
class TestLocalLaunch(LaunchSuite):
    pass
