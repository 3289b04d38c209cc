"""The typed config of SSH compute (``compute/ssh_schema``, extended by ``conf/compute/ssh.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mltrain.compute.configs import ComputeConfig, positive
from mltrain.errors import ConfigError


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
    cpus: float | None = None  # CPU limit in cores of a job's container (build: docker); null: no limit
    memory_gb: float | None = None  # memory limit in GB of a job's container (build: docker); null: no limit
    offline: bool = False  # hosts cannot reach the package index: venvs are built from wheels this machine ships
    offline_memory_s: float = 3600.0  # a host whose build found no index builds offline for so long (0: asks each time)

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
        if not float(self.offline_memory_s) >= 0:
            raise ConfigError(
                f"compute.offline_memory_s={self.offline_memory_s!r} must be a number of seconds >= 0",
                hint="0 tries the package index at every build; the default 3600 remembers an unreachable one an hour",
            )
        self.offline_memory_s = float(self.offline_memory_s)
        self.max_output_mb = float(positive("compute.max_output_mb", self.max_output_mb, " of MB") or 1024)
        self.cpus = positive("compute.cpus", self.cpus, " of cores")
        self.memory_gb = positive("compute.memory_gb", self.memory_gb, " of GB")
