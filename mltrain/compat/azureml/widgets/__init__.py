"""``azureml.widgets``: not provided by mltrain's stand-in (follow a run with wait_for_completion or the
dashboard, ``mltrain ui``)."""

from __future__ import annotations

from typing import Any

from ..core._unsupported import unsupported_import


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_import(
        f"azureml.widgets.{name}", "follow a run with run.wait_for_completion(show_output=True), or `mltrain ui`"
    )
