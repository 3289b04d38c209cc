"""The Docker compute target: each job a container of its environment's image, on one engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.docker.config import DockerComputeConfig
from mltrain.compute.docker.container import container_name, job_container
from mltrain.compute.docker.engine import Engine
from mltrain.compute.docker.handle import DockerHandle
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from docker import APIClient

    from mltrain.compute.delivery import Delivered
    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore


class DockerCompute(ComputeTarget):
    """Runs jobs in containers on a Docker engine."""

    name = "docker"
    Config = DockerComputeConfig
    builds = ("venv", "docker")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        cfg = self.config
        assert isinstance(cfg, DockerComputeConfig)
        self.cfg: DockerComputeConfig = cfg
        self.engine = Engine(cfg.base_url)

    def check(self) -> None:
        self.engine.api  # noqa: B018 - connects and pings; ComputeError naming the address when it cannot

    def describe(self) -> str:
        return f"docker ({self.engine.address})"

    # -- environment --------------------------------------------------------------------------------
    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        from mltrain.environments.builders import builder_for
        from mltrain.environments.docker import require_base_image

        if env.spec.build not in self.builds:
            raise ComputeError(
                f"environment {env.spec.name} is the interpreter mltrain runs on (build: system), "
                "which cannot run in a Docker container",
                hint="use an environment with build: venv or docker and environment.docker.base_image, "
                "or run without +compute=docker",
            )
        require_base_image(env)
        # every spec becomes an image
        return builder_for("docker", base_url=self.cfg.base_url, api=self.engine.connected)

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use
        from mltrain.environments.docker import image_size

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built, size_bytes=built.size_bytes or image_size(self.engine.api, built.location))
        return built

    def deliver(self, ws: Workspace, spec: RunSpec, log: LogFn) -> Delivered:
        """The inputs in the run folder on this machine, as for local compute; mounted ones are bound
        read-only into the container, so they are links into the cache whoever runs mltrain."""
        from mltrain.compute.delivery import deliver_here

        return deliver_here(spec.inputs, spec.outputs, spec.run_dir, log, bound_read_only=True)

    # -- the job ------------------------------------------------------------------------------------
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        import docker

        cfg = self.cfg
        api = self.engine.api
        container = job_container(
            spec,
            env,
            str(spec.run_dir.resolve()),
            shim_dir=str(spec.shim_dir.resolve()) if spec.shim_dir else None,
            user=cfg.user,
            network=cfg.network,
            cpus=cfg.cpus,
            memory_gb=cfg.memory_gb,
        )
        try:
            cid = container.create(api)
        except docker.errors.APIError as exc:
            raise ComputeError(
                f"cannot create the container of run {spec.run_id}: {exc.explanation or exc}",
                hint="check compute.network, compute.user and the limits in the compute config",
            ) from exc
        stream_client: APIClient | None = None
        try:
            # attach before start so that no output is missed; a client without a read timeout
            stream_client = self.engine.client(timeout=None)
            stream = stream_client.attach(cid, stdout=True, stderr=True, stream=True, logs=True, demux=True)
            api.start(cid)
        except BaseException as exc:
            if stream_client is not None:
                stream_client.close()
            self.engine.remove(cid)
            if not isinstance(exc, docker.errors.APIError):
                raise
            raise ComputeError(
                f"the container of run {spec.run_id} did not start: {exc.explanation or exc}",
                hint="check compute.user and the limits in the compute config",
            ) from exc
        handle = self._handle(spec, self.engine, cid, sink)
        handle.follow(stream, stream_client)
        return handle

    def _handle(self, spec: RunSpec, engine: Engine, container_id: str, sink: OutputSink) -> DockerHandle:
        cfg = self.cfg
        return DockerHandle(spec, engine, container_id, sink, self.cancel_grace_s, cfg.memory_gb, cfg.keep_container)

    def _engine_of(self, ref: JobRef) -> Engine:
        """This target's engine, or the one the job ran on when that is another."""
        engine = ref.get("engine")
        return self.engine if not engine or engine == self.engine.address else Engine(str(engine))

    def attach(
        self, ref: JobRef, spec: RunSpec, sink: OutputSink, *, blobs: BlobStore | None = None
    ) -> RunHandle | None:
        import docker

        engine = self._engine_of(ref)
        cid = str(ref["container"])
        try:
            state = engine.api.inspect_container(cid).get("State") or {}
        except docker.errors.NotFound:
            return None
        handle = self._handle(spec, engine, cid, sink)
        stream_client = engine.client(timeout=None)
        if state.get("Running"):
            stream = stream_client.attach(cid, stdout=True, stderr=True, stream=True, logs=False, demux=True)
        else:
            stream = iter(())
        handle.follow(stream, stream_client)
        return handle

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """``docker stop``: SIGTERM, then SIGKILL after the grace period (``cleanup`` removes it)."""
        import docker

        engine = self._engine_of(ref)
        grace = self.cancel_grace_s if grace_s is None else grace_s
        try:
            state = engine.api.inspect_container(str(ref["container"])).get("State") or {}
            if not state.get("Running"):
                return False
            engine.api.stop(str(ref["container"]), timeout=max(1, round(grace)))
        except docker.errors.NotFound:
            return False
        return True

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        if handle is not None:
            handle.cleanup()
        elif self.engine.connected is not None:  # canceled while starting: no handle, but maybe a container
            self.engine.remove(container_name(spec.run_id))

    def close(self) -> None:
        self.engine.close()
