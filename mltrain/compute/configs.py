"""What the typed configs of the compute targets share: :class:`ComputeConfig` (each target's package
extends it in its ``config.py``; :mod:`mltrain.compute.schemas` lists them for Hydra), value checks,
and the secret options (the cluster token) that are never stored with a run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


@dataclass
class SSHHostConfig:
    """One machine of an SSH pool (``host`` may be an alias of ``~/.ssh/config``)."""

    host: str = "???"
    port: int | None = None  # null: from ~/.ssh/config, else 22
    user: str | None = None  # null: from ~/.ssh/config, else the local user
    key_file: str | None = None  # private key; null: ssh-agent, ~/.ssh/config and the default keys
    slots: int = 1  # jobs this host runs at once
    workdir: str | None = None  # this host's folder for mltrain; null: compute.workdir
    python: str = "python3"  # the interpreter mltrain's helper (and build: system jobs) run with there


HOST_KEY_POLICIES = ("reject", "accept-new")


@dataclass
class SSHComputeConfig(ComputeConfig):
    """Machines reached over SSH: the snapshot is uploaded, the job runs in a venv built there."""

    _target_: str = "mltrain.compute.ssh.SSHCompute"
    hosts: list[SSHHostConfig] = field(default_factory=list)
    workdir: str = "~/.mltrain-remote"  # folder on each host: blob cache, run folders, venvs
    known_hosts: str | None = None  # known_hosts file; null: ~/.ssh/known_hosts
    host_key_policy: str = "reject"  # reject: unknown or changed host keys are refused; accept-new: record unknown ones
    keepalive_s: float = 5.0  # a host silent for 3 times this is "connection lost"
    connect_timeout_s: float = 15.0  # TCP connect and SSH handshake
    retries: int = 0  # a run whose host was lost runs again on another host this many times
    keep_failed: bool = False  # keep the remote run folder of a failed run (for a look on the host)
    max_output_mb: float = 1024.0  # largest outputs/ + logs/ a job sends back

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.hosts:
            raise ConfigError(
                "compute.hosts is empty: SSH compute needs at least one host",
                hint="e.g. compute.hosts='[{host: gpu1, user: me, slots: 2}]'",
            )
        # entries given as mappings (recorded configs, keyword options) become SSHHostConfig
        self.hosts = [h if isinstance(h, SSHHostConfig) else SSHHostConfig(**dict(h)) for h in self.hosts]
        for h in self.hosts:
            if not h.host or h.host == "???" or int(h.slots) < 1:
                raise ConfigError(f"compute.hosts entry {h!r} needs a host and slots >= 1")
        if self.host_key_policy not in HOST_KEY_POLICIES:
            raise ConfigError(
                f"compute.host_key_policy={self.host_key_policy!r} is not supported",
                hint="use reject (the default) or accept-new",
            )
        self.keepalive_s = positive("compute.keepalive_s", self.keepalive_s, " of seconds") or 5.0
        self.connect_timeout_s = positive("compute.connect_timeout_s", self.connect_timeout_s, " of seconds") or 15.0
        if int(self.retries) < 0:
            raise ConfigError(f"compute.retries={self.retries!r} must be >= 0")
        self.max_output_mb = float(positive("compute.max_output_mb", self.max_output_mb, " of MB") or 1024)


RESERVED_RUNTIME_ENV = ("working_dir", "pip", "uv", "conda", "py_executable")  # made by mltrain from the run
SECRET_KEYS = ("token",)  # compute options whose value is never stored with a run's config
REDACTED = "<redacted>"


@dataclass
class ClusterComputeConfig(ComputeConfig):
    """A Ray cluster, reached through Ray's Job Submission API; each run is one Ray job."""

    _target_: str = "mltrain.compute.cluster.ClusterCompute"
    address: str = "http://127.0.0.1:8265"  # dashboard URL, HOST:PORT (GCS) or ray://HOST:PORT
    num_cpus: float = 1.0  # CPUs Ray reserves for each run (the job's entrypoint)
    memory_gb: float | None = None  # memory Ray reserves for each run, in GB; null: none
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources per run
    max_retries: int = 1  # new attempts of a run whose node died (not of a script that failed)
    runtime_env: dict[str, Any] = field(default_factory=dict)  # extra runtime_env fields (env_vars, ...)
    installer: str = "pip"  # how nodes install the environment's lock: pip or uv
    token: str | None = None  # the cluster's token itself (never stored with the run: prefer token_file)
    token_file: str | None = None  # a file holding the token
    token_env: str | None = None  # the name of an environment variable holding the token
    submit_timeout_s: float = 60.0  # timeout of each call to the cluster's job server
    start_timeout_s: float | None = 900.0  # a job still pending after this fails (no node had room)
    max_output_mb: float = 1024.0  # largest outputs/ + logs/ a job sends back
    keep_job: bool = False  # keep the finished Ray job (and its logs) on the cluster

    def __post_init__(self) -> None:
        super().__post_init__()
        self.address = str(self.address or "").strip()
        if not self.address:
            raise ConfigError("compute.address is empty", hint="set it to the cluster's dashboard URL or HOST:PORT")
        if not re.fullmatch(r"(local|(https?|ray)://[\w.:\-\[\]]+/?|[\w.\-]+:\d+)", self.address):
            raise ConfigError(
                f"compute.address={self.address!r} is not a cluster address",
                hint="use http://HOST:DASHBOARD_PORT, HOST:GCS_PORT, ray://HOST:CLIENT_PORT or local",
            )
        self.num_cpus = float(self.num_cpus)
        if self.num_cpus < 0:
            raise ConfigError(f"compute.num_cpus={self.num_cpus} must be >= 0")
        self.memory_gb = positive("compute.memory_gb", self.memory_gb, " of GB")
        self.resources = {str(k): float(v) for k, v in dict(self.resources or {}).items()}
        if int(self.max_retries) < 0:
            raise ConfigError(f"compute.max_retries={self.max_retries} must be >= 0")
        self.max_retries = int(self.max_retries)
        self.runtime_env = dict(self.runtime_env or {})
        taken = sorted(set(self.runtime_env) & set(RESERVED_RUNTIME_ENV))
        if taken:
            raise ConfigError(
                f"compute.runtime_env sets {', '.join(taken)}, which mltrain makes from the run",
                hint="the snapshot is the working_dir and the environment's lock the packages: change the "
                "environment (environment.pip) instead",
            )
        if self.installer not in ("pip", "uv"):
            raise ConfigError(f"compute.installer={self.installer!r} is not supported", hint="use pip or uv")
        if self.token == REDACTED:
            self.token = None  # a recorded config: the token was never stored
        self.submit_timeout_s = float(positive("compute.submit_timeout_s", self.submit_timeout_s, " of seconds") or 60)
        self.start_timeout_s = positive("compute.start_timeout_s", self.start_timeout_s, " of seconds")
        self.max_output_mb = float(positive("compute.max_output_mb", self.max_output_mb, " of MB") or 1024)


def redact_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the values of secret compute options (the cluster token) replaced, for storing."""
    compute = config.get("compute")
    if not isinstance(compute, dict) or not any(compute.get(k) for k in SECRET_KEYS):
        return config
    return {**config, "compute": {k: (REDACTED if k in SECRET_KEYS and v else v) for k, v in compute.items()}}


def redact_overrides(overrides: list[str]) -> list[str]:
    """Command-line overrides with the values of secret compute options replaced, for storing."""
    secret = {f"compute.{k}" for k in SECRET_KEYS}
    out = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        out.append(f"{key}={REDACTED}" if sep and key.lstrip("+~") in secret else item)
    return out
