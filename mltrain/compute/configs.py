"""What the typed configs of the compute targets share: :class:`ComputeConfig` (each target's package
extends it in its ``config.py``; :mod:`mltrain.compute.schemas` lists them for Hydra), value checks,
the secret options (the cluster token) that are never stored with a run, and the credentials of URLs
(a proxy's or an index's) that are never shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mltrain.errors import ConfigError


def positive(option: str, value: float | None, unit: str = "") -> float | None:
    """``value`` as a float, refused unless None or > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not float(value) > 0:
        raise ConfigError(f"{option}={value!r} must be a positive number{unit}", hint="or null for no limit")
    return float(value)


@dataclass
class ComputeConfig:
    """Options every compute target has."""

    _target_: str = "mltrain.compute.local.LocalCompute"
    cancel_grace_s: float = 5.0  # seconds between the polite stop signals and SIGKILL on cancel

    def __post_init__(self) -> None:
        if not float(self.cancel_grace_s) >= 0:
            raise ConfigError(f"compute.cancel_grace_s={self.cancel_grace_s!r} must be >= 0")
        self.cancel_grace_s = float(self.cancel_grace_s)


SECRET_KEYS = ("token",)  # compute options whose value is never stored with a run's config
REDACTED = "<redacted>"
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)([^\s/@:]*)(:[^\s/]*)?@")


def redact_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the values of secret compute options (the cluster token) replaced, for storing."""
    compute = config.get("compute")
    if not isinstance(compute, dict) or not any(compute.get(k) for k in SECRET_KEYS):
        return config
    return {**config, "compute": {k: (REDACTED if k in SECRET_KEYS and v else v) for k, v in compute.items()}}


def redact_overrides(overrides: list[str], quoted: bool = False) -> list[str]:
    """Command-line overrides with the values of secret compute options replaced, for storing
    (``quoted``: as a value Hydra can still parse, for composing a config that is only shown)."""
    secret = {f"compute.{k}" for k in SECRET_KEYS}
    value = f"'{REDACTED}'" if quoted else REDACTED
    out = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        out.append(f"{key}={value}" if sep and key.lstrip("+~") in secret else item)
    return out


def redact_urls(text: str) -> str:
    """``text`` with the credentials of each URL in it replaced, for showing: ``http://me:pw@proxy:3128``
    becomes ``http://me:<redacted>@proxy:3128``, and a user alone (often a token) is replaced."""

    def hide(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}:{REDACTED}@" if m.group(3) is not None else f"{m.group(1)}{REDACTED}@"

    return _URL_CREDENTIALS.sub(hide, text)
