"""Docker compute: the job runs in a container of its environment's image (``mltrain-env:<hash>``).

The run folder is mounted read-write at ``/mltrain/run`` (the working directory), so the script's
outputs, logs and metrics land where the driver reads them and nothing has to be copied back. The
in-script API is mounted read-only at ``/mltrain/shim`` and put on ``PYTHONPATH``. The container
gets only the job's environment (never the caller's), runs as the caller's uid:gid by default so
the files it writes are the caller's, with ``docker-init`` as PID 1 so signals reach the script.
Its reference is ``{"kind": "docker", "container", "engine"}``: any process that reaches the engine
can follow, stop and remove it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec, job_environment
from mltrain.compute.configs import DockerComputeConfig
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from docker import APIClient

    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

RUN_DIR = "/mltrain/run"
SHIM_DIR = "/mltrain/shim"
LABEL_RUN = "mltrain.run_id"
LABEL_EXPERIMENT = "mltrain.experiment"


class DockerHandle(RunHandle):
    """A started container: output pumped to the sink, exit code from the engine's wait."""

    def __init__(self, spec: RunSpec, compute: DockerCompute, container_id: str, sink: OutputSink) -> None:
        super().__init__(spec)
        self.compute = compute
        self.container_id = container_id
        self.sink = sink
        self._code: int | None = None
        self._done = threading.Event()
        self._stopper: threading.Thread | None = None
        self._pump: threading.Thread | None = None

    @property
    def ref(self) -> JobRef:
        return {"kind": "docker", "container": self.container_id, "engine": self.compute.address}

    def follow(self, stream: Any, client: APIClient) -> None:
        """Start copying the attached ``stream`` (of ``client``) to the sink and waiting for the exit code."""
        self._pump = threading.Thread(target=self._copy, args=(stream, client), name="mltrain-docker-out", daemon=True)
        self._pump.start()
        threading.Thread(target=self._wait, name="mltrain-docker-wait", daemon=True).start()

    def _copy(self, stream: Any, client: APIClient) -> None:
        try:
            for out, err in stream:
                if out:
                    self.sink.write(out, "stdout")
                if err:
                    self.sink.write(err, "stderr")
        except Exception:  # noqa: BLE001 - the engine closed the stream
            pass
        finally:
            client.close()

    def _wait(self) -> None:
        api: APIClient | None = None
        try:
            api = self.compute.client(timeout=None)
            code = int(api.wait(self.container_id).get("StatusCode", 1))
            state = api.inspect_container(self.container_id).get("State") or {}
        except Exception as exc:  # noqa: BLE001 - engine gone, container removed
            code, state = 1, {}
            self.sink.write(f"[mltrain] lost the container: {exc}\n".encode(), "stderr")
        finally:
            if api is not None:
                api.close()
        if self._pump is not None:
            self._pump.join(timeout=10)
        if state.get("OOMKilled"):
            limit = self.compute.memory_gb
            self.sink.write(
                f"[mltrain] the container ran out of memory: it was killed (OOMKilled) at its memory limit "
                f"of {limit:g} GB; raise compute.memory_gb\n".encode()
                if limit
                else b"[mltrain] the container ran out of memory: it was killed (OOMKilled)\n",
                "stderr",
            )
        self._code = code
        self._done.set()

    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        if self._done.is_set():
            return
        if force:
            threading.Thread(target=self._signal, args=("SIGKILL",), daemon=True).start()
            return
        if self._stopper is None:
            self._stopper = threading.Thread(target=self._stop, name="mltrain-docker-stop", daemon=True)
            self._stopper.start()

    def _signal(self, sig: str) -> None:
        self._call(lambda api: api.kill(self.container_id, signal=sig))

    def _stop(self) -> None:
        """SIGINT, then (after the grace period) SIGTERM and SIGKILL via ``docker stop``."""
        grace = self.compute.cancel_grace_s
        self._signal("SIGINT")
        if self._done.wait(grace):
            return
        self._call(lambda api: api.stop(self.container_id, timeout=max(1, round(grace))), timeout=grace + 60)

    def _call(self, action: Callable[[APIClient], object], timeout: float = 60) -> None:
        """``action`` with a client of its own (from a thread); errors mean the container is gone."""
        api: APIClient | None = None
        try:
            api = self.compute.client(timeout=timeout)
            action(api)
        except Exception:  # noqa: BLE001 - already gone, or the engine is
            pass
        finally:
            if api is not None:
                api.close()


class DockerCompute(ComputeTarget):
    """Runs jobs in containers on a Docker engine."""

    name = "docker"
    Config = DockerComputeConfig
    builds = ("venv", "docker")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        cfg = self.config
        assert isinstance(cfg, DockerComputeConfig)
        self.base_url = cfg.base_url
        self.cpus = cfg.cpus
        self.memory_gb = cfg.memory_gb
        self.network = cfg.network
        self.user = cfg.user
        self.keep_container = cfg.keep_container
        self._api: APIClient | None = None
        self._api_lock = threading.Lock()

    # -- the engine ---------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        from mltrain.environments.docker import engine_address

        return engine_address(self.base_url)

    @property
    def api(self) -> APIClient:
        """The client this target's own calls share (trials of a plan run in threads)."""
        with self._api_lock:
            if self._api is None:
                self._api = self.client()
            return self._api

    def client(self, timeout: float | None = 120) -> APIClient:
        """A new client of the engine (threads each use their own)."""
        from mltrain.environments.docker import connect

        return connect(self.base_url, timeout=timeout)

    def check(self) -> None:
        self.api  # noqa: B018 - connects and pings; ComputeError naming the address when it cannot

    def describe(self) -> str:
        return f"docker ({self.address})"

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
        return builder_for("docker", base_url=self.base_url, api=self._api)  # every spec becomes an image

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use
        from mltrain.environments.docker import image_size

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built, size_bytes=built.size_bytes or image_size(self.api, built.location))
        return built

    # -- the job ------------------------------------------------------------------------------------
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        import docker

        from mltrain.environments.docker import create_container

        api = self.api
        binds = {str(spec.run_dir.resolve()): {"bind": RUN_DIR, "mode": "rw"}}
        if spec.shim_dir:
            binds[str(spec.shim_dir.resolve())] = {"bind": SHIM_DIR, "mode": "ro"}
        try:
            cid = create_container(
                api,
                env.location,
                [env.python, spec.script, *spec.arguments],
                name=f"mltrain-{spec.run_id}",
                labels={LABEL_RUN: spec.run_id, LABEL_EXPERIMENT: spec.experiment},
                binds=binds,
                environment=job_environment(spec, env, RUN_DIR, SHIM_DIR if spec.shim_dir else None, inherit=False),
                working_dir=RUN_DIR,
                user=self.user,
                network=self.network,
                cpus=self.cpus,
                memory_gb=self.memory_gb,
            )
        except docker.errors.APIError as exc:
            raise ComputeError(
                f"cannot create the container of run {spec.run_id}: {exc.explanation or exc}",
                hint="check compute.network, compute.user and the limits in the compute config",
            ) from exc
        stream_client: APIClient | None = None
        try:
            # attach before start so that no output is missed; a client without a read timeout
            stream_client = self.client(timeout=None)
            stream = stream_client.attach(cid, stdout=True, stderr=True, stream=True, logs=True, demux=True)
            api.start(cid)
        except BaseException as exc:
            if stream_client is not None:
                stream_client.close()
            self._remove(cid)
            if not isinstance(exc, docker.errors.APIError):
                raise
            raise ComputeError(
                f"the container of run {spec.run_id} did not start: {exc.explanation or exc}",
                hint="check compute.user and the limits in the compute config",
            ) from exc
        handle = DockerHandle(spec, self, cid, sink)
        handle.follow(stream, stream_client)
        return handle

    def _for_ref(self, ref: JobRef) -> DockerCompute:
        """This target, or one on the engine the job ran on when that is another."""
        engine = ref.get("engine")
        return self if not engine or engine == self.address else DockerCompute(base_url=engine)

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink) -> RunHandle | None:
        import docker

        compute = self._for_ref(ref)
        cid = str(ref["container"])
        try:
            state = compute.api.inspect_container(cid).get("State") or {}
        except docker.errors.NotFound:
            return None
        handle = DockerHandle(spec, compute, cid, sink)
        stream_client = compute.client(timeout=None)
        if state.get("Running"):
            stream = stream_client.attach(cid, stdout=True, stderr=True, stream=True, logs=False, demux=True)
        else:
            stream = iter(())
        handle.follow(stream, stream_client)
        return handle

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """``docker stop``: SIGTERM, then SIGKILL after the grace period (``cleanup`` removes it)."""
        import docker

        compute = self._for_ref(ref)
        grace = self.cancel_grace_s if grace_s is None else grace_s
        try:
            state = compute.api.inspect_container(str(ref["container"])).get("State") or {}
            if not state.get("Running"):
                return False
            compute.api.stop(str(ref["container"]), timeout=max(1, round(grace)))
        except docker.errors.NotFound:
            return False
        return True

    def _remove(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        if isinstance(handle, DockerHandle):
            if not self.keep_container:
                handle.compute._remove(handle.container_id)
        elif self._api is not None:  # canceled while starting: no handle, but maybe a container
            self._remove(f"mltrain-{spec.run_id}")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
