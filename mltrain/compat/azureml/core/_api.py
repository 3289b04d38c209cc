"""How the stand-in's submit side reaches mltrain: its Python API (``mltrain.api``), imported when first
used, so the stand-in itself stays importable in a job's environment, where mltrain is not installed."""

from __future__ import annotations

import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@-]+$")


def mltrain_api(what: str) -> Any:
    """The ``mltrain.api`` module; ImportError naming ``what`` when mltrain is not installed here."""
    try:
        import mltrain.api as api
    except ImportError as exc:
        raise ImportError(
            f"{what} needs mltrain installed where it is called (pip install mltrain): inside a job, "
            "mltrain's azureml stand-in provides the in-script API only (Run.get_context())"
        ) from exc
    return api


def quoted(value: Any, always: bool = False) -> str:
    """``value`` as a string in Hydra's override syntax, quoted when it is not a plain word (``always``:
    quoted whatever it is, so it stays a string)."""
    text = str(value)
    if not always and _PLAIN.match(text) and not text.startswith("-"):
        return f"'{text}'" if text.lower() in ("null", "true", "false", "nan", "inf") else text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def note(text: str) -> None:
    import sys

    print(f"mltrain: {text}", file=sys.stderr, flush=True)
