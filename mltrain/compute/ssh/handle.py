"""A job on an SSH host, followed over one channel: its output and metrics streamed live with
heartbeats (a host silent for 3 × ``keepalive_s`` is "connection lost"; with ``compute.retries`` the
run starts again on another host), its outputs packed at its end (outputs/ and logs/ uploaded by the
host itself instead when the artifact root is an object store: :mod:`mltrain.compute.ssh.outputs`);
``collect`` unpacks them and
``cleanup`` removes the remote run folder (kept when it failed and ``keep_failed``).

The reference ``{"kind": "ssh", "host", "port", "user", "key_file", "run", "pgid"}`` (plus
``container``) reaches the job from any process.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.ssh.config import SSHComputeConfig
from mltrain.compute.ssh.conn import ConnectionLost, Remote
from mltrain.compute.ssh.mux import read_exact
from mltrain.compute.ssh.pool import HostPool
from mltrain.errors import ComputeError, MltrainError
from mltrain.run_context import METRICS_FILE

if TYPE_CHECKING:
    from mltrain.workspace.blobs import BlobStore

MAX_FRAME = 2 << 30  # bytes in one frame of the helper's stream (the packed run folder is the largest)


class SSHHandle(RunHandle):
    """A job on ``remote`` (a host of ``pool``), followed over one channel (output, metrics, heartbeats,
    exit code). When the host is lost, ``restart(handle, why)`` may start the run again elsewhere."""

    def __init__(
        self,
        spec: RunSpec,
        cfg: SSHComputeConfig,
        pool: HostPool,
        remote: Remote,
        pgid: int,
        sink: OutputSink,
        offsets: tuple[int, int, int] = (0, 0, 0),
        mirror: bool = True,
        channel: Any = None,
        container: str | None = None,
        restart: Callable[[SSHHandle, str], bool] | None = None,
    ) -> None:
        super().__init__(spec)
        self.cfg, self.pool, self._restart = cfg, pool, restart
        self.container = container  # the name of the job's container (build: docker)
        self.remote = remote
        self.pgid = pgid
        self.sink = sink
        self.mirror = mirror  # write metrics into the local run folder as they come
        self.offsets = list(offsets)
        self.code: int | None = None
        self.lost: ComputeError | None = None
        self.attempt = 0
        self.removed = False  # the remote run folder is gone (collected and removed in one go)
        self.packed: bytes | None = None  # outputs/, logs/, uploads, metrics: tar sent at the job's end
        self.direct: BlobStore | None = None  # the host uploads outputs/ and logs/ into this store itself
        self.finisher: Any = None  # the ended job's stream, open until cleanup says remove or keep
        self._channel = channel  # the start command's channel, which goes on as the follow stream
        self._metrics = bytearray()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stopper: threading.Thread | None = None
        threading.Thread(target=self._follow, name="mltrain-ssh-follow", daemon=True).start()

    @property
    def ref(self) -> JobRef:
        ref: JobRef = {"kind": "ssh", **self.remote.ident(), "run": self.spec.run_id, "pgid": self.pgid}
        if self.container:
            ref["container"] = self.container
        return ref

    @property
    def where(self) -> str:
        return f"ssh ({self.remote.label})"

    # -- following --------------------------------------------------------------------------------
    def _follow(self) -> None:
        while True:
            try:
                self._stream()
                break
            except (ConnectionLost, OSError, EOFError) as exc:
                if self._reconnected():
                    continue  # the job kept running; resume where the stream stopped
                message = str(exc) if isinstance(exc, ConnectionLost) else f"connection lost to {self.remote.label}"
                if self.cancel_reason is None and self._restart is not None and self._restart(self, message):
                    continue
                self.pool.mark_down(self.remote, message)  # later runs (a sweep's) go to other hosts
                self.lost = ConnectionLost(
                    f"{message}: the host stopped answering while run {self.spec.run_id} ran on it",
                    hint="check the host (is sshd up, the network?); compute.retries runs it again elsewhere",
                )
                break
        self.pool.release(self.spec.run_id)  # the host's slot is free once the job ended, not after finalize
        self._done.set()

    def _reconnected(self) -> bool:
        return self.remote.reconnect()

    def _stream(self) -> None:
        """Follow the job to its end. A started job's stream (``mirror``) also brings the packed run
        folder ('p') and stays open afterwards, so that ``cleanup`` needs no command of its own."""
        beat = self.cfg.keepalive_s
        chan, self._channel = self._channel, None
        if chan is None:
            finish = "pack" if self.mirror else ""
            args = ("follow", self.spec.run_id, ",".join(map(str, self.offsets)), str(beat), finish)
            chan = self.remote.agent_channel(*args, timeout=beat * 3)
            if not finish:
                chan.shutdown_write()
        keep = False
        try:
            while True:
                kind, data = _read_frame(chan, self.remote)
                if kind == "x":
                    self.code = int(data)
                    keep = self.mirror
                    self.finisher = chan if keep else None
                    return
                if kind == "p":
                    self.packed = data
                elif kind in "oem":
                    self.offsets["oem".index(kind)] += len(data)
                if kind == "o":
                    self.sink.write(data, "stdout")
                elif kind == "e":
                    self.sink.write(data, "stderr")
                elif kind == "m":
                    with self._lock:
                        self._metrics += data
                    if self.mirror:
                        path = self.spec.run_dir / METRICS_FILE
                        path.parent.mkdir(parents=True, exist_ok=True)
                        with open(path, "ab") as f:
                            f.write(data)
        finally:
            if not keep:
                chan.close()

    def finish(self, remove: bool) -> bool:
        """Tell the open stream of an ended job to remove (or keep) its run folder; False when that
        stream is not open any more (the caller uses a command instead)."""
        chan, self.finisher = self.finisher, None
        if chan is None:
            return False
        try:
            chan.settimeout(60)
            chan.sendall(b"remove\n" if remove else b"keep\n")
            kind, _ = _read_frame(chan, self.remote)
            return kind == "r"
        except (ComputeError, OSError, EOFError):
            return False
        finally:
            chan.close()

    def restarted(self, remote: Remote, pgid: int, channel: Any) -> None:
        """The run was started again on ``remote`` (a retry): follow it from the start."""
        self.remote, self.pgid, self.offsets, self._channel = remote, pgid, [0, 0, 0], channel
        self.attempt += 1

    # -- the contract -----------------------------------------------------------------------------
    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        if self.lost is not None:
            raise self.lost
        return self.code

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        with self._lock:
            data = bytes(self._metrics[:limit])
            del self._metrics[:limit]
        return data

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        if self._done.is_set():
            return
        if force:
            threading.Thread(target=self._quiet, args=("kill", self.spec.run_id), daemon=True).start()
        elif self._stopper is None:
            grace = str(self.cfg.cancel_grace_s)
            args = ("stop", self.spec.run_id, grace, "INT")
            self._stopper = threading.Thread(target=self._quiet, args=args, name="mltrain-ssh-stop", daemon=True)
            self._stopper.start()

    def _quiet(self, *args: str) -> None:
        try:
            self.remote.agent(*args, timeout=self.cfg.cancel_grace_s * 3 + 60)
        except ComputeError as exc:
            self.sink.log(f"could not signal the job on {self.remote.label}: {exc}")

    # -- what the job left ------------------------------------------------------------------------
    def collect(self) -> None:
        """outputs/, logs/, uploads and the metrics file of the remote run folder, into the local one
        (sent at the job's end on its stream; fetched with a command for a re-attached job)."""
        run_dir = self.spec.run_dir
        if self.packed is not None:
            self.received += len(self.packed)
            extract_outputs(self.packed, run_dir, self.cfg.max_output_mb)
            if self.direct is None:
                return
        skip = self._upload_direct() if self.direct is not None else []
        ok = self.lost is None and self.code == 0
        remove = self.finisher is None and (ok or not self.cfg.keep_failed)  # collect and clean up at once
        args = ("pack", self.spec.run_id, "remove" if remove else "keep", *(["skip"] if self.direct else []))
        stdin = json.dumps({"skip": skip}).encode() if self.direct else b""
        code, data, err = self.remote.agent_exec(*args, stdin=stdin, timeout=120)
        if code != 0:
            raise ComputeError(
                f"cannot fetch the files of run {self.spec.run_id} from {self.remote.label}: {err.decode()[-300:]}"
            )
        self.removed = remove
        self.received += len(data)
        extract_outputs(data, run_dir, self.cfg.max_output_mb)

    def _upload_direct(self) -> list[str]:
        """The host's outputs/ and logs/ into the object store, by the host itself (:attr:`stored`); the
        paths that went (the archive that follows leaves them out)."""
        from mltrain.compute.node_outputs import OutputsRefused, as_stored
        from mltrain.compute.ssh.outputs import upload_outputs

        assert self.direct is not None
        run_dir, label = self.spec.run_dir, self.remote.label
        try:
            sent = upload_outputs(self.remote, self.spec.run_id, self.direct, self.cfg.max_output_mb, self.sink.log)
        except OutputsRefused:
            raise
        except MltrainError as exc:  # the host or the store could not be used: everything comes through here
            self.sink.log(f"{label} could not upload the run's outputs itself ({exc.message}): they come through here")
            return []
        self.stored.update(as_stored(run_dir, sent))
        return list(sent)

    def cleanup(self) -> None:
        """Remove the remote run folder (kept when the run failed and ``keep_failed``)."""
        if self.remote.probe is None:
            return
        keep = (self.lost is not None or self.code != 0) and self.cfg.keep_failed
        if self.removed or self.finish(remove=not keep) or keep:
            return
        try:
            self.remote.agent("remove", self.spec.run_id, timeout=60)
        except ComputeError:
            pass  # the host is gone: nothing more to release


def _read_frame(chan: Any, remote: Remote) -> tuple[str, bytes]:
    """One (kind, data) frame of the helper's stream; ConnectionLost when it ends without one."""
    head = read_exact(chan, 5)
    size = struct.unpack(">I", head[1:])[0] if head is not None else 0
    if size > MAX_FRAME:
        raise ComputeError(f"{remote.label} sent a frame of {size} bytes; mltrain's helper never does")
    data = read_exact(chan, size) if head is not None else None
    if head is None or data is None:
        raise ConnectionLost(f"connection lost to {remote.label}")
    return chr(head[0]), data
