"""How mltrain reaches a Ray cluster: its job server's URL and the token that authenticates us.

The token comes from (first found) ``compute.token``, ``compute.token_file``, the variable named by
``compute.token_env``, then Ray's own places (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
``~/.ray/auth_token``). It is sent as ``Authorization: Bearer`` to the job server and given to
Ray processes through their environment only; it is never printed, put on a command line or
stored (a run's recorded config has it redacted). mltrain never turns authentication off: a cluster
that wants a token and gets none, or a wrong one, is refused before a run is recorded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mltrain.errors import ComputeError, ConfigError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from mltrain.compute.ray.config import ClusterComputeConfig

_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
TOKEN_HINT = (
    "give the cluster's token with compute.token_file=PATH or compute.token_env=VARIABLE "
    "(or Ray's RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH); `ray get-auth-token` on the head node prints it"
)


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it was read (named in errors; never the value)

    def __repr__(self) -> str:  # never shown, even in a traceback's locals
        return f"Token(source={self.source!r})"


def _read_file(path: str, source: str) -> Token:
    p = Path(path).expanduser()
    try:
        text = p.read_text().strip()
    except OSError as exc:
        what = f"cannot read the cluster token from {source} ({p}): {exc.strerror}"
        raise ConfigError(what, hint=TOKEN_HINT) from None
    return _checked(text, source)


def _checked(value: str, source: str) -> Token:
    value = value.strip()
    if not _TOKEN.fullmatch(value):
        raise ConfigError(f"the cluster token from {source} is empty or not one printable word", hint=TOKEN_HINT)
    return Token(value, source)


def find_token(cfg: ClusterComputeConfig) -> Token | None:
    """The token to send, or None when none is configured anywhere."""
    if cfg.token:
        return _checked(cfg.token, "compute.token")
    if cfg.token_file:
        return _read_file(cfg.token_file, "compute.token_file")
    if cfg.token_env:
        value = os.environ.get(cfg.token_env)
        if not value:
            raise ConfigError(f"compute.token_env names {cfg.token_env}, which is not set", hint=TOKEN_HINT)
        return _checked(value, f"${cfg.token_env}")
    if os.environ.get("RAY_AUTH_TOKEN"):
        return _checked(os.environ["RAY_AUTH_TOKEN"], "$RAY_AUTH_TOKEN")
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return _read_file(os.environ["RAY_AUTH_TOKEN_PATH"], "$RAY_AUTH_TOKEN_PATH")
    default = Path.home() / ".ray" / "auth_token"
    return _read_file(str(default), "~/.ray/auth_token") if default.is_file() else None


def headers(token: Token | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.value}"} if token else {}


def ray_env(token: Token | None) -> dict[str, str]:
    """The environment of a Ray client process we start: the caller's, with our token (never off)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    if token is not None:
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token.value})
    return env


_RESOLVE = """
import json, sys
from ray.dashboard.utils import get_address_for_submission_client
print(json.dumps(get_address_for_submission_client(sys.argv[1])))
"""


def unreachable(address: str, timeout: float) -> ComputeError:
    """The error of a cluster address that did not answer within ``compute.connect_timeout_s``."""
    return ComputeError(
        f"cannot reach the Ray cluster at {address} within compute.connect_timeout_s={timeout:g} s",
        hint="check compute.address (the head's HOST:GCS_PORT, e.g. HEAD:6379, or ray://HEAD:10001), that the "
        "cluster runs and that this machine reaches it; or give its dashboard URL (http://HEAD:8265); "
        "on a slow network raise compute.connect_timeout_s",
    )


def job_server_url(address: str, token: Token | None, timeout: float) -> str:
    """The job server's URL of ``address``: a dashboard URL as is; for ``HOST:PORT`` (GCS) and
    ``ray://`` addresses, asked of the cluster by a short Ray client process, given ``timeout``
    seconds (``compute.connect_timeout_s``; Ray's client would retry for longer). Ctrl-C ends it."""
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    try:
        out = subprocess.run(  # killed at the bound, or on Ctrl-C
            [sys.executable, "-c", _RESOLVE, address],
            env=ray_env(token),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise unreachable(address, timeout) from None
    if out.returncode != 0 and re.search(r"Timed out while waiting for GCS|connection timeout", out.stderr):
        raise unreachable(address, timeout)
    if out.returncode != 0:
        tail = "\n    ".join(out.stderr.strip().splitlines()[-4:])
        hint = TOKEN_HINT if "auth" in out.stderr.lower() else "check compute.address, or give the dashboard URL"
        raise ComputeError(f"cannot reach the Ray cluster at {address}:\n    {tail}", hint=hint)
    url = str(json.loads(out.stdout.strip().splitlines()[-1]))
    return url if "://" in url else f"http://{url}"


def probe(url: str, token: Token | None, timeout: float) -> None:
    """An authenticated request to the job server: a clear ComputeError when it refuses us."""
    req = urllib.request.Request(f"{url}/api/jobs/mltrain-auth-probe", headers=headers(token))
    try:
        with urllib.request.urlopen(req, timeout=timeout):  # noqa: S310 - the configured cluster
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return  # authenticated: the probe job does not exist
        if exc.code == 401:
            raise ComputeError(
                f"the Ray cluster at {url} requires a token and mltrain found none", hint=TOKEN_HINT
            ) from None
        if exc.code == 403:
            raise ComputeError(
                f"the Ray cluster at {url} refused the token from {token.source if token else '?'} "
                "(invalid authentication token)",
                hint="use the cluster's own token; " + TOKEN_HINT,
            ) from None
        raise ComputeError(f"the Ray job server at {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ComputeError(
            f"cannot reach the Ray job server at {url}: {reason}",
            hint="check compute.address (the dashboard's host:port) and that the cluster runs",
        ) from None


def check_address_env(url: str) -> None:
    """A ConfigError when the environment names another cluster than ``url`` (Ray's job client would
    take it)."""
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        if os.environ.get(var) and os.environ[var].rstrip("/") != url:
            raise ConfigError(
                f"{var}={os.environ[var]} is set: Ray's job client would use it instead of compute.address",
                hint=f"unset {var} to use compute.address",
            )


def job_client(url: str, token: Token | None) -> JobSubmissionClient:
    """A Job Submission API client of ``url`` sending our token (ours, never the environment's)."""
    check_address_env(url)
    import logging

    from ray.job_submission import JobSubmissionClient

    # Ray's client logs every package upload and closed log stream at INFO: not the user's business
    for name in ("ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(url, headers=headers(token))
    except Exception as exc:  # noqa: BLE001 - requests/ray errors of an unreachable server
        raise ComputeError(f"cannot use the Ray job server at {url}: {exc}") from None
