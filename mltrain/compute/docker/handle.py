"""A started (or attached) container: output pumped to the sink, exit code from the engine's wait;
``cleanup`` removes it (unless ``compute.keep_container``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec

if TYPE_CHECKING:
    from docker import APIClient

    from mltrain.compute.docker.engine import Engine


class DockerHandle(RunHandle):
    """A container on ``engine``; ``grace_s`` between SIGINT and ``docker stop``'s SIGTERM on cancel,
    ``memory_gb`` its limit (named when it was OOM-killed), ``keep`` its container after ``cleanup``."""

    def __init__(
        self,
        spec: RunSpec,
        engine: Engine,
        container_id: str,
        sink: OutputSink,
        grace_s: float,
        memory_gb: float | None = None,
        keep: bool = False,
    ) -> None:
        super().__init__(spec)
        self.engine = engine
        self.grace_s, self.memory_gb, self.keep = grace_s, memory_gb, keep
        self.container_id = container_id
        self.sink = sink
        self._code: int | None = None
        self._done = threading.Event()
        self._stopper: threading.Thread | None = None
        self._pump: threading.Thread | None = None

    @property
    def ref(self) -> JobRef:
        return {"kind": "docker", "container": self.container_id, "engine": self.engine.address}

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
            api = self.engine.client(timeout=None)
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
            limit = self.memory_gb
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
        self.engine.call(lambda api: api.kill(self.container_id, signal=sig))

    def _stop(self) -> None:
        """SIGINT, then (after the grace period) SIGTERM and SIGKILL via ``docker stop``."""
        grace = self.grace_s
        self._signal("SIGINT")
        if self._done.wait(grace):
            return
        self.engine.call(lambda api: api.stop(self.container_id, timeout=max(1, round(grace))), timeout=grace + 60)

    def cleanup(self) -> None:
        if not self.keep:
            self.engine.remove(self.container_id)
