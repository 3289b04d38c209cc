"""The typed config of Ray cluster compute (``compute/cluster_schema``, extended by ``conf/compute/cluster.yaml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mltrain.compute.configs import REDACTED, ComputeConfig, positive
from mltrain.errors import ConfigError

MAX_SIGNED_S = 7 * 24 * 3600  # the longest an S3 (SigV4) signature is valid
RESERVED_RUNTIME_ENV = ("working_dir", "pip", "uv", "conda", "py_executable")  # made by mltrain from the run


@dataclass
class ClusterComputeConfig(ComputeConfig):
    """A Ray cluster, reached through Ray's Job Submission API; each run is one Ray job."""

    _target_: str = "mltrain.compute.ray.ClusterCompute"
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
    connect_timeout_s: float = 30.0  # longest wait to reach a GCS / ray:// address (or to connect as a driver)
    start_timeout_s: float | None = 900.0  # a job still pending after this fails (no node had room)
    max_output_mb: float = 1024.0  # largest outputs/ + logs/ a job sends back
    # lifetime of the signed URLs (snapshot reads) and upload policy (outputs) a job gets with an object-store
    # artifact root: readable in Ray's job info, so no longer than a run needs; a run that outlives its policy
    # sends its outputs back through its log
    signed_url_expires_s: int = 6 * 3600
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
        self.connect_timeout_s = float(
            positive("compute.connect_timeout_s", self.connect_timeout_s, " of seconds") or 30
        )
        self.start_timeout_s = positive("compute.start_timeout_s", self.start_timeout_s, " of seconds")
        self.max_output_mb = float(positive("compute.max_output_mb", self.max_output_mb, " of MB") or 1024)
        expires = int(self.signed_url_expires_s)
        if not 60 <= expires <= MAX_SIGNED_S:
            raise ConfigError(
                f"compute.signed_url_expires_s={self.signed_url_expires_s} is out of range",
                hint=f"use 60 to {MAX_SIGNED_S} seconds (7 days: the longest an S3 signature lives); about "
                "how long a run takes from its submission to its end",
            )
        self.signed_url_expires_s = expires
