"""The ``python -m mltrain`` Hydra application: compose the config, run the task, report errors."""

from __future__ import annotations

import os
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mltrain.bundled import bundled_dir

_exit_codes: list[int] = []


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("mltrain.bundled"):
        OmegaConf.register_new_resolver("mltrain.bundled", lambda rel: str(bundled_dir("examples").parent / rel))


def task(cfg: DictConfig) -> None:
    """Hydra task function: one run (or one job of a sweep) of the composed config."""
    from mltrain.runs.driver import run_from_config

    _exit_codes.append(run_from_config(cfg))


def main(argv: list[str] | None = None) -> int:
    """Run the app on ``argv`` (default ``sys.argv[1:]``); return the process exit code."""
    import hydra

    from mltrain.config.errors import report_config_error
    from mltrain.config.schema import register_schemas

    register_schemas()
    _register_resolvers()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
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
