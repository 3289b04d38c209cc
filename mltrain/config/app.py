"""The ``python -m mltrain`` Hydra application: compose the config, run the task, report errors.

Each invocation is an :class:`App` object: its bound ``task`` is Hydra's task function (one run),
and its ``sweep`` the entry point mltrain's Hydra launcher and sweeper call for a multirun (one sweep
run, a child per trial; found as ``task.__self__``). Both record their exit code on the App (never in
module state); the process exits with the worst.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrain.bundled import bundled_dir

if TYPE_CHECKING:
    from mltrain.runs.sweep.trials import SweepResult, SweepSpec

Handoff = Callable[[dict[str, Any], list[str], dict[str, str]], None]  # config, overrides, hydra.job.env_set


PRINT_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def only_prints(argv: list[str]) -> bool:
    """Hydra options that show the config (or help) instead of running it."""
    return any(a.split("=", 1)[0] in PRINT_FLAGS for a in argv)


def prepare_hydra() -> None:
    """Register what composing mltrain's config needs: the root schema and the resolvers."""
    from omegaconf import OmegaConf

    from mltrain.config.schema import register_schemas

    register_schemas()
    if not OmegaConf.has_resolver("mltrain.bundled"):
        OmegaConf.register_new_resolver("mltrain.bundled", lambda rel: str(bundled_dir("examples").parent / rel))


def hydra_overrides() -> list[str]:
    """The command-line overrides of the current Hydra job (main thread of a single run only)."""
    from hydra.core.hydra_config import HydraConfig

    from mltrain.config.overrides import user_overrides
    from mltrain.environments.variables import as_written

    return user_overrides(as_written(HydraConfig.get().overrides.task))


class App:
    """One ``python -m mltrain`` invocation. ``handoff`` (the prefork child's) receives the composed
    job instead of running it."""

    def __init__(self, handoff: Handoff | None = None, digest: str | None = None) -> None:
        self.handoff = handoff
        self.exit_codes: list[int] = []
        self.digest = digest  # given: what a plain run's composition read is kept in ``read``
        self.read: dict[str, Any] | None = None  # (mltrain.config.recall.inputs)
        self._plain = False

    def report(self, code: int) -> int:
        """Record a run's (or a sweep's) exit code; the process exits with the worst one."""
        self.exit_codes.append(code)
        return code

    def task(self, cfg: Any) -> int:
        """Hydra task function: one run of the composed config; returns its exit code."""
        from mltrain.environments.variables import plain_config

        config = plain_config(cfg, list(cfg))  # ${oc.env:NAME} of env_vars kept: read when the job starts
        if self.handoff is not None:
            from hydra.core.hydra_config import HydraConfig

            env_set = {str(k): str(v) for k, v in (HydraConfig.get().job.env_set or {}).items()}
            self.handoff(config, hydra_overrides(), env_set)
            if self.digest is not None and self._plain:
                from omegaconf import OmegaConf

                from mltrain.config import recall

                self.read = recall.inputs(OmegaConf.to_container(cfg, resolve=False), self.digest)
            return 0
        from mltrain.runs.driver import run_from_config

        return self.report(run_from_config(config, hydra_overrides()))

    def sweep(self, spec: SweepSpec) -> SweepResult:
        """Sweep entry point (:class:`mltrain.runs.sweep.entry.SweepApp`): run Hydra's multirun as one
        sweep; record its exit code."""
        from mltrain.runs.sweep.entry import run_sweep

        result = run_sweep(spec)
        self.report(result.exit_code)
        return result

    def main(self, argv: list[str] | None = None) -> int:
        """Run the app on ``argv`` (default ``sys.argv[1:]``); return the process exit code."""
        import hydra

        from mltrain.config.errors import report_config_error

        prepare_hydra()
        from mltrain.config.overrides import expand
        from mltrain.config.resume import resume_argv

        given = list(sys.argv[1:] if argv is None else argv)
        user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach report_config_error
        app: Any = hydra.main(config_path=str(bundled_dir("conf")), config_name="config", version_base="1.3")(self.task)
        try:
            sys.argv = [sys.argv[0], *expand(resume_argv(given))]  # a sweep resumed by its id: its overrides
            if only_prints(sys.argv[1:]):  # nothing runs: the config is shown without its secrets
                from mltrain.compute.configs import redact_overrides

                sys.argv[1:] = redact_overrides(sys.argv[1:], quoted=True)
            if not any(a.startswith("-") for a in sys.argv[1:]) and self._plain_run(sys.argv[1:]):
                return max(self.exit_codes, default=0)
            app()
        except KeyboardInterrupt:
            sys.stderr.write("mltrain: interrupted\n")
            return 130
        except Exception as exc:  # noqa: BLE001 - every composition error is reported, not traced
            if user_full_error:
                raise
            return report_config_error(exc)
        finally:
            if not user_full_error:
                os.environ.pop("HYDRA_FULL_ERROR", None)
        return max(self.exit_codes, default=0)

    def _plain_run(self, overrides: list[str]) -> bool:
        """A single run without Hydra options: compose once and run the task (``hydra.main`` composes
        twice, the first time only to learn the mode). False, having run nothing, when the composed
        config asks for what only Hydra's run does (a sweep mode, callbacks, a working-directory
        change or an output folder): the caller then runs ``hydra.main``."""
        from hydra import compose, initialize_config_dir
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import open_dict

        with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3", job_name="mltrain"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            h = cfg.hydra
            plain = (
                h.mode in (None, RunMode.RUN)
                and not h.callbacks
                and not h.job.chdir
                and h.run.dir == "."
                and h.output_subdir is None
            )
            if not plain:
                return False
            HydraConfig.instance().set_config(cfg)
            os.environ.update({str(k): str(v) for k, v in (h.job.env_set or {}).items()})  # as Hydra's run_job
            with open_dict(cfg):
                del cfg["hydra"]
            self._plain = True
            self.task(cfg)
        return True


def main(argv: list[str] | None = None) -> int:
    """``python -m mltrain`` in this process."""
    return App().main(argv)
