"""Many helper commands over one SSH channel: the driver's side of the helper's ``serve`` mode
(:mod:`mltrain.remote.ssh_serve`, where the frames are described).

A :class:`Mux` owns the channel running ``serve`` and a thread that reads its frames; each command is
a :class:`MuxChannel`, which reads like the paramiko channel of a command of its own (``recv``,
``sendall``, ``shutdown_write``, ``recv_exit_status``, timeouts), so callers need not know which they
hold. When the connection breaks, every open command reads end of stream, as its channel would.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from mltrain.compute.ssh.lost import ConnectionLost

HEAD = struct.Struct(">cII")


def read_exact(chan: Any, size: int) -> bytes | None:
    """``size`` bytes from ``chan`` (None at end of stream); socket.timeout when it goes silent."""
    buf = bytearray()
    while len(buf) < size:
        data = chan.recv(size - len(buf))
        if not data:
            return None
        buf += data
    return bytes(buf)


class MuxChannel:
    """One command of a :class:`Mux`: its stdout, stderr and exit status as they arrive."""

    def __init__(self, mux: Mux, ident: int, timeout: float | None) -> None:
        self.mux, self.ident, self.timeout = mux, ident, timeout
        self._cond = threading.Condition()
        self._out = bytearray()
        self._err = bytearray()
        self._code: int | None = None
        self._gone = False
        self.closed = False

    # -- from the reader thread -------------------------------------------------------------------
    def deliver(self, kind: bytes, data: bytes) -> None:
        with self._cond:
            if kind == b"o":
                self._out += data
            elif kind == b"e":
                self._err += data
            elif kind == b"x":
                self._code = int(data)
            self._cond.notify_all()

    def lost(self) -> None:
        with self._cond:
            self._gone = True
            self._cond.notify_all()

    # -- as a paramiko channel --------------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def sendall(self, data: bytes) -> None:
        self.mux.send(b"i", self.ident, data)

    def shutdown_write(self) -> None:
        self.mux.send(b"e", self.ident, b"")

    def _wait(self, ready: Callable[[], bool], timeout: float | None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: ready() or self._gone or self._code is not None, timeout):
                raise TimeoutError(f"no answer within {timeout} s")

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of stdout; b"" at its end; socket.timeout after ``timeout`` of silence."""
        self._wait(lambda: bool(self._out), self.timeout)
        with self._cond:
            data = bytes(self._out[:size])
            del self._out[:size]
            return data

    def recv_ready(self) -> bool:
        return bool(self._out)

    def recv_stderr_ready(self) -> bool:
        return bool(self._err)

    def recv_stderr(self, size: int) -> bytes:
        with self._cond:
            data = bytes(self._err[:size])
            del self._err[:size]
            return data

    def exit_status_ready(self) -> bool:
        return self._code is not None

    def recv_exit_status(self) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._gone or self._code is not None)
            return -1 if self._code is None else self._code

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._code is None and not self._gone:
            try:
                self.mux.send(b"k", self.ident, b"")
            except OSError:
                pass
        self.mux.forget(self.ident)

    # -- a whole command --------------------------------------------------------------------------
    def communicate(
        self, stdin: bytes | Iterable[bytes], timeout: float | None, on_stderr: Callable[[str], None] | None
    ) -> tuple[int, bytes, bytes]:
        """Send ``stdin`` (bytes, or chunks sent as they come until the command exits early: its answer
        says why), then read to the end: (exit status, stdout, stderr). ConnectionLost when the
        connection breaks or nothing comes for ``timeout`` seconds."""
        out, err, pending = bytearray(), bytearray(), b""
        try:
            for chunk in [stdin] if isinstance(stdin, bytes) else stdin:
                if self._code is not None:
                    break
                if chunk:
                    self.sendall(chunk)
            self.shutdown_write()
            last = time.monotonic()
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._out or self._err or self._gone or self._code is not None, 1.0)
                    got_out, got_err = bytes(self._out), bytes(self._err)
                    self._out.clear()
                    self._err.clear()
                    code, gone = self._code, self._gone
                out += got_out
                err += got_err
                if got_err and on_stderr:
                    pending += got_err
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        on_stderr(line.decode(errors="replace"))
                if code is not None:
                    break
                if gone:
                    raise ConnectionLost(f"connection lost to {self.mux.label}")
                if got_out or got_err:
                    last = time.monotonic()
                elif timeout is not None and time.monotonic() - last > timeout:
                    raise ConnectionLost(f"connection lost to {self.mux.label}: no answer within {timeout:.0f} s")
            if on_stderr and pending:
                on_stderr(pending.decode(errors="replace"))
            return code, bytes(out), bytes(err)
        except OSError as exc:
            raise ConnectionLost(f"connection lost to {self.mux.label}: {exc}") from None
        finally:
            self.close()


class Mux:
    """The helper's ``serve`` on one channel (``chan``) of a host's connection."""

    def __init__(self, chan: Any, label: str) -> None:
        self.chan, self.label = chan, label
        self._lock = threading.Lock()
        self._chans: dict[int, MuxChannel] = {}
        self._next = 1
        self.alive = True
        chan.settimeout(None)
        threading.Thread(target=self._read, name="mltrain-ssh-mux", daemon=True).start()

    def open(self, args: tuple[str, ...], timeout: float | None) -> MuxChannel:
        """Start the helper command ``args``; OSError when the connection is gone."""
        with self._lock:
            ident = self._next
            self._next += 1
            chan = MuxChannel(self, ident, timeout)
            self._chans[ident] = chan
        self.send(b"c", ident, json.dumps(list(args)).encode())
        return chan

    def send(self, kind: bytes, ident: int, data: bytes) -> None:
        with self._lock:
            if not self.alive:
                raise OSError(f"connection lost to {self.label}")
            self.chan.sendall(HEAD.pack(kind, ident, len(data)) + data)

    def forget(self, ident: int) -> None:
        with self._lock:
            self._chans.pop(ident, None)

    def _read(self) -> None:
        try:
            while True:
                head = read_exact(self.chan, HEAD.size)
                if head is None:
                    break
                kind, ident, size = HEAD.unpack(head)
                data = read_exact(self.chan, size) if size else b""
                if data is None:
                    break
                with self._lock:
                    chan = self._chans.get(ident)
                    if kind == b"x":
                        self._chans.pop(ident, None)
                if chan is not None:
                    chan.deliver(kind, data)
        except Exception:  # noqa: BLE001, S110 - paramiko raises several kinds when the link is gone
            pass
        finally:
            self.close()

    def close(self) -> None:
        """End ``serve`` (it lets the jobs it forked finish) and every command still open."""
        with self._lock:
            self.alive = False
            chans, self._chans = list(self._chans.values()), {}
        for chan in chans:
            chan.lost()
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001, S110 - already broken
            pass
