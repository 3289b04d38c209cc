"""The server's config file: keys, defaults and validation (standard library only).

The deployer writes this JSON; ``python -m mltrain.serving CONFIG.json`` and ``create_app(config)`` read it.
Contract keys: name, model_name, model_version, model_path, model_sha256, model_format, trusted_types, host,
port, workers, auth, keys_file, max_body_bytes, memory_gb, ready_file. Server tuning keys (optional):
batch_max_rows, watchdog_interval_s, graceful_timeout_s, timeout_keep_alive_s, access_log, log_level.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from mltrain.serving.errors import ServingError

MODEL_FORMATS = ("joblib", "skops")
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_BATCH_MAX_ROWS = 256


@dataclass(frozen=True)
class ServingConfig:
    """A validated server config; see the module docstring for the keys."""

    model_path: str
    model_sha256: str
    model_format: str = "joblib"
    name: str = ""  # endpoint name; defaults to model_name
    model_name: str = "model"
    model_version: str | None = None
    trusted_types: tuple[str, ...] = ()  # skops: extra type names to trust
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port (read it from ready_file)
    workers: int = 1  # server processes sharing the listening socket
    auth: bool = False  # require "Authorization: Bearer KEY" on /score and /metrics
    keys_file: str | None = None  # JSON {"primary": sha256 hex, "secondary": sha256 hex}
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    memory_gb: float | None = None  # watchdog limit on the workers' resident memory, all workers together
    ready_file: str | None = None  # written atomically with {"pid", "port", "url"} once every worker is ready
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS  # concurrent requests are scored in one call up to this; <= 1: off
    watchdog_interval_s: float = 1.0  # how often the supervisor checks workers' liveness and memory
    graceful_timeout_s: float = 10.0  # on SIGTERM, how long in-flight requests may take before workers are killed
    timeout_keep_alive_s: int = 5
    access_log: bool = False
    log_level: str = "warning"
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept and reported


def _fail(message: str, hint: str | None = None) -> ServingError:
    return ServingError(f"invalid server config: {message}", hint)


def _as_int(data: dict[str, Any], key: str, minimum: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(f"{key} must be a positive number or null, got {value!r}")
    return float(value)


def parse_config(data: dict[str, Any]) -> ServingConfig:
    """Validate a config mapping; raise :class:`ServingError` naming the bad key."""
    if not isinstance(data, dict):
        raise _fail(f"expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(ServingConfig)} - {"extra"}
    extra = {k: v for k, v in data.items() if k not in known}
    for key in ("model_path", "model_sha256"):
        if not data.get(key) or not isinstance(data[key], str):
            raise _fail(f"{key} is required (a string)")
    model_path = data["model_path"]
    if not os.path.isabs(model_path):
        raise _fail(f"model_path must be an absolute path, got {model_path!r}")
    sha = data["model_sha256"].lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise _fail(f"model_sha256 must be 64 hex digits, got {data['model_sha256']!r}")
    fmt = data.get("model_format") or "joblib"
    if fmt not in MODEL_FORMATS:
        raise _fail(f"model_format must be one of {', '.join(MODEL_FORMATS)}, got {fmt!r}")
    trusted = data.get("trusted_types") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise _fail(f"trusted_types must be a list of type names, got {trusted!r}")
    auth = data.get("auth", False)
    if not isinstance(auth, bool):
        raise _fail(f"auth must be true or false, got {auth!r}")
    keys_file = data.get("keys_file")
    if auth and not keys_file:
        raise _fail("auth is true but keys_file is not set", "set keys_file to the endpoint's keys JSON file")
    if keys_file is not None and (not isinstance(keys_file, str) or not os.path.isabs(keys_file)):
        raise _fail(f"keys_file must be an absolute path, got {keys_file!r}")
    ready_file = data.get("ready_file")
    if ready_file is not None and (not isinstance(ready_file, str) or not os.path.isabs(ready_file)):
        raise _fail(f"ready_file must be an absolute path or null, got {ready_file!r}")
    host = data.get("host") or "127.0.0.1"
    port = _as_int(data, "port", 0)
    if port is not None and port > 65535:
        raise _fail(f"port must be at most 65535, got {port}")
    model_name = str(data.get("model_name") or "model")
    version = data.get("model_version")
    log_level = str(data.get("log_level") or "warning").lower()
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise _fail(f"log_level must be one of critical, error, warning, info, debug; got {log_level!r}")
    return ServingConfig(
        model_path=model_path,
        model_sha256=sha,
        model_format=fmt,
        name=str(data.get("name") or model_name),
        model_name=model_name,
        model_version=None if version is None else str(version),
        trusted_types=tuple(trusted),
        host=host,
        port=port or 0,
        workers=_as_int(data, "workers", 1) or 1,
        auth=auth,
        keys_file=keys_file,
        max_body_bytes=_as_int(data, "max_body_bytes", 1) or DEFAULT_MAX_BODY_BYTES,
        memory_gb=_as_float(data, "memory_gb"),
        ready_file=ready_file,
        batch_max_rows=_as_int(data, "batch_max_rows", 0)
        if data.get("batch_max_rows") is not None
        else DEFAULT_BATCH_MAX_ROWS,
        watchdog_interval_s=_as_float(data, "watchdog_interval_s") or 1.0,
        graceful_timeout_s=_as_float(data, "graceful_timeout_s") or 10.0,
        timeout_keep_alive_s=_as_int(data, "timeout_keep_alive_s", 1) or 5,
        access_log=bool(data.get("access_log", False)),
        log_level=log_level,
        extra=extra,
    )


def warn_unknown_keys(config: ServingConfig) -> None:
    if config.extra:
        print(f"mltrain.serving: ignoring unknown config keys: {', '.join(sorted(config.extra))}", file=sys.stderr)
