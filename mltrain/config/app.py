"""The ``python -m mltrain`` Hydra application: compose the config, run the task, report errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from mltrain.bundled import bundled_dir

_exit_codes: list[int] = []
# Set in a prefork child (mltrain/config/prefork.py): receives the composed job instead of running it.
handoff: Callable[[dict[str, Any], list[str]], None] | None = None


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mltrain.bundled"):
        OmegaConf.register_new_resolver("mltrain.bundled", lambda rel: str(bundled_dir("examples").parent / rel))


def hydra_overrides() -> list[str]:
    """The command-line overrides of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    from mltrain.config.overrides import user_overrides

    return user_overrides(list(HydraConfig.get().overrides.task))


def task(cfg: Any) -> None:
    """Hydra task function: one run (or one job of a sweep) of the composed config."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    if handoff is not None:
        handoff(config, hydra_overrides())
        return
    from mltrain.runs.driver import run_from_config

    _exit_codes.append(run_from_config(config, hydra_overrides()))


def main(argv: list[str] | None = None) -> int:
    """Run the app on ``argv`` (default ``sys.argv[1:]``); return the process exit code."""
    import hydra

    from mltrain.config.errors import report_config_error
    from mltrain.config.schema import register_schemas

    register_schemas()
    _register_resolvers()
    from mltrain.config.overrides import expand

    sys.argv = [sys.argv[0], *expand(list(sys.argv[1:] if argv is None else argv))]
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach report_config_error
    _exit_codes.clear()
    app: Any = hydra.main(config_path=str(bundled_dir("conf")), config_name="config", version_base="1.3")(task)
    try:
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
    return max(_exit_codes, default=0)
