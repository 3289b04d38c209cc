"""The docker target: the scoring server in a container of the serving environment's image.

The image is the model environment's (``mltrain-env:<hash>``, built FROM ``base_image``, with the
server's requirements in its lock). The endpoint folder (config, model, keys, ready file) is mounted
at ``/mltrain/endpoint`` and the server modules read-only at ``/mltrain/shim``. The container runs
on the host network bound to ``host:port`` (127.0.0.1 by default), as the caller's uid:gid, with the
endpoint's limits: memory (``memory_gb``, no swap beyond it) and CPU (``cpu`` as nano CPUs).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.deploy.base import CONFIG_FILE, LABEL_WORKSPACE, READY_FILE, DeployTarget, ServerPlan, Started
from mltrain.deploy.configs import DockerDeployConfig
from mltrain.errors import DeployError

if TYPE_CHECKING:
    from docker import APIClient

ENDPOINT_DIR = "/mltrain/endpoint"
SHIM_DIR = "/mltrain/shim"
LABEL_ENDPOINT = "mltrain.endpoint"
STOP_TIMEOUT_S = 10


def container_name(name: str, workspace_root: str) -> str:
    """One container name per endpoint of a workspace (two workspaces may use the same endpoint name)."""
    tag = hashlib.sha256(workspace_root.encode()).hexdigest()[:8]
    return f"mltrain-endpoint-{name}-{tag}"


RESTART_POLICY = {"Name": "unless-stopped"}  # an engine restart (or a crash) brings the endpoint back


def free_port(host: str) -> int:
    """A port free on ``host`` right now (the container uses the host's network)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class DockerTarget(DeployTarget):
    """Serves in a Docker container (``+deploy=docker``, ``--target docker``)."""

    kind = "docker"
    env_build = "docker"

    Config = DockerDeployConfig

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        cfg = self.config
        assert isinstance(cfg, DockerDeployConfig)
        self.base_url = cfg.base_url
        self.base_image = cfg.base_image
        self.user = None if cfg.user is None else str(cfg.user)
        self._api: APIClient | None = None

    @property
    def api(self) -> APIClient:
        if self._api is None:
            from mltrain.environments.docker import connect

            self._api = connect(self.base_url)
        return self._api

    @property
    def address(self) -> str:
        from mltrain.environments.docker import engine_address

        return engine_address(self.base_url)

    def check(self) -> None:
        self.api  # noqa: B018 - connects and pings; an error naming the address when it cannot

    def _remove(self, ident: str) -> None:
        import docker

        try:
            self.api.remove_container(ident, force=True, v=True)
        except docker.errors.NotFound:
            pass

    def start(self, plan: ServerPlan) -> Started:
        import docker

        from mltrain.environments.container import ContainerSpec
        from mltrain.environments.docker import PYTHON

        folder = plan.folder.resolve()
        config = plan.server_config(ENDPOINT_DIR, memory_watchdog=False)
        if not config.get("port"):  # fixed, so a container restarted by the engine keeps the endpoint's URI
            config["port"] = free_port(str(config.get("host") or "127.0.0.1"))
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        (folder / READY_FILE).unlink(missing_ok=True)
        name = container_name(plan.name, plan.labels.get(LABEL_WORKSPACE, str(folder)))
        self._remove(name)  # a container left by a deploy that was killed
        binds = {
            str(folder): {"bind": ENDPOINT_DIR, "mode": "rw"},
            str(plan.shim_dir.resolve()): {"bind": SHIM_DIR, "mode": "ro"},
        }
        environment = {**plan.built.env_vars, "PYTHONPATH": SHIM_DIR, "PYTHONUNBUFFERED": "1"}
        api = self.api
        try:
            container_id = ContainerSpec(
                image=plan.built.location,
                command=[PYTHON, "-m", "mltrain.serving", f"{ENDPOINT_DIR}/{CONFIG_FILE}"],
                name=name,
                working_dir=ENDPOINT_DIR,
                environment=environment,
                labels={LABEL_ENDPOINT: plan.name, **plan.labels},
                binds=binds,
                user=self.user,
                cpus=plan.cpu,
                memory_gb=plan.memory_gb,
                restart_policy=RESTART_POLICY,
            ).create(api)
            api.start(container_id)
        except docker.errors.APIError as exc:
            raise DeployError(
                f"the container of endpoint {plan.name} did not start: {exc.explanation or exc}",
                hint="check the deploy options (cpu, memory_gb, user) and the engine at " + self.address,
            ) from exc
        return Started(container_id=container_id, base_url=self.address)

    def _state(self, container_id: str) -> dict[str, Any] | None:
        import docker

        try:
            return self.api.inspect_container(container_id).get("State") or {}
        except docker.errors.NotFound:
            return None

    @staticmethod
    def _describe(state: dict[str, Any] | None) -> str:
        if state is None:
            return "the container is gone"
        if state.get("OOMKilled"):
            return "the container ran out of memory (OOMKilled at its memory limit; raise memory_gb)"
        return f"the container exited with code {state.get('ExitCode')}"

    def exited(self, started: Started) -> str | None:
        state = self._state(str(started.container_id))
        if state is not None and state.get("Running") and not state.get("Restarting"):
            return None
        return self._describe(state)  # Restarting (the engine keeps it "Running"): the server exited

    def output_tail(self, folder: Path, started: Started, lines: int = 30) -> str:
        try:
            return self.api.logs(str(started.container_id), tail=lines).decode(errors="replace").rstrip()
        except Exception:  # noqa: BLE001 - the container is gone
            return ""

    def probe(self, record: Mapping[str, Any]) -> tuple[bool | None, str]:
        from mltrain.errors import MltrainError

        try:
            state = self._state(str(record.get("container_id")))
        except MltrainError as exc:
            return None, str(exc).splitlines()[0]
        if state is not None and state.get("Running"):
            return True, ""
        return False, self._describe(state)

    def stop(self, record: Mapping[str, Any]) -> None:
        import docker

        cid = record.get("container_id")
        if not cid:
            return
        try:
            self.api.stop(cid, timeout=STOP_TIMEOUT_S)
        except docker.errors.NotFound:
            return
        self._remove(cid)

    def logs(self, record: Mapping[str, Any], follow: bool) -> None:
        import docker

        from mltrain.text import TerminalStream

        cid = record.get("container_id")
        out = TerminalStream(sys.stdout.buffer)  # the server's output: control characters escaped
        try:
            if follow:
                for chunk in self.api.logs(cid, stream=True, follow=True):
                    out.write(chunk)
            else:
                out.write(self.api.logs(cid))
        except docker.errors.NotFound:
            print(f"(the container of endpoint {record['name']} is gone)", file=sys.stderr)
