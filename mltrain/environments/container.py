"""How every mltrain container runs, whichever client starts it: one :class:`ContainerSpec` (image,
command, ``docker-init`` as PID 1 so signals reach the program, user, environment, limits, labels,
mounts), rendered for the Docker SDK (:meth:`ContainerSpec.create`: the docker compute and deploy
targets) and as a foreground ``docker run`` command line (:meth:`ContainerSpec.run_argv`: a job in an
image on an SSH host, reached only by its docker CLI). A container's environment is passed at start,
never baked into an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient

# Variables the docker CLI itself reads: given to a container literally, never through the CLI's environment.
CLI_VARIABLES = (
    "HOME",
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: list[str]
    name: str
    working_dir: str
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    binds: dict[str, dict[str, str]] = field(default_factory=dict)  # host path -> {"bind": path in it, "mode"}
    user: str | None = None  # uid:gid; None: the caller's, so files it writes in a mount are the caller's
    network: str = "host"
    cpus: float | None = None  # CPU limit in cores
    memory_gb: float | None = None  # memory limit, with no swap beyond it
    restart_policy: dict[str, Any] | None = None  # the engine restarts it (an endpoint's server; SDK only)

    @property
    def uid_gid(self) -> str:
        return str(self.user) if self.user is not None else f"{os.getuid()}:{os.getgid()}"

    @property
    def env(self) -> dict[str, str]:
        """The environment it runs with: a uid other than root gets ``HOME=/tmp`` (no passwd entry,
        no writable home)."""
        environment = dict(self.environment)
        if self.uid_gid.split(":")[0] not in ("0", "root"):
            environment.setdefault("HOME", "/tmp")
        return environment

    @property
    def limits(self) -> dict[str, int]:
        """``nano_cpus`` and memory (``mem_limit``, ``memswap_limit``), as the engine's API names them."""
        limits: dict[str, int] = {}
        if self.cpus is not None:
            limits["nano_cpus"] = int(self.cpus * 1e9)
        if self.memory_gb is not None:
            limits["mem_limit"] = limits["memswap_limit"] = int(self.memory_gb * 1024**3)
        return limits

    def create(self, api: APIClient) -> str:
        """Create (not start) the container through the Docker SDK; its id."""
        extra: dict[str, Any] = dict(self.limits)
        if self.restart_policy:
            extra["restart_policy"] = self.restart_policy
        host_config = api.create_host_config(binds=self.binds, network_mode=self.network, init=True, **extra)
        container = api.create_container(
            self.image,
            command=self.command,
            working_dir=self.working_dir,
            environment=self.env,
            user=self.uid_gid,
            labels=self.labels,
            name=self.name,
            host_config=host_config,
            stdin_open=False,
            tty=False,
        )
        return str(container["Id"])

    def run_argv(self, docker: str) -> tuple[list[str], dict[str, str]]:
        """``docker run`` in the foreground (output on its stdout/stderr, signals passed on to the
        container, removed when it ends). Returns the argv and the variables the CLI's environment must
        hold: the container's are passed by name (``-e NAME``), so their values never show in a
        process list."""
        argv = [docker, "run", "--rm", "--init", "--name", self.name, "--network", self.network]
        argv += ["--user", self.uid_gid, "--workdir", self.working_dir]
        for key, value in sorted(self.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for source, bind in self.binds.items():
            argv += ["--volume", f"{source}:{bind['bind']}:{bind.get('mode', 'rw')}"]
        limits = self.limits
        if "nano_cpus" in limits:
            argv += ["--cpus", f"{limits['nano_cpus'] / 1e9:g}"]
        if "mem_limit" in limits:
            argv += ["--memory", f"{limits['mem_limit']}b", "--memory-swap", f"{limits['memswap_limit']}b"]
        values: dict[str, str] = {}
        for key, value in sorted(self.env.items()):
            if key in CLI_VARIABLES:
                argv += ["--env", f"{key}={value}"]
            else:
                argv += ["--env", key]
                values[key] = value
        return [*argv, self.image, *self.command], values
