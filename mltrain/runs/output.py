"""A running job's output: shown live on the console (control characters escaped, as
:mod:`mltrain.text` does for all stored text) and kept as it came in the run's ``logs/std_log.txt``."""

from __future__ import annotations

import sys
import threading
from collections import deque
from pathlib import Path
from typing import BinaryIO

from mltrain.text import TerminalStream, escape_controls

STD_LOG = "logs/std_log.txt"
BUILD_LOG = "logs/build_log.txt"


class RunOutput:
    """OutputSink of one run; keeps the last lines of stderr for the run's error summary."""

    def __init__(self, run_dir: Path, echo: bool = True, prefix: str = "") -> None:
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._log: BinaryIO = open(run_dir / STD_LOG, "ab")  # noqa: SIM115 - closed in close()
        self._build_log_path = run_dir / BUILD_LOG
        self._echo = echo
        self._prefix = prefix
        self._console = (
            {"stdout": TerminalStream(sys.stdout.buffer), "stderr": TerminalStream(sys.stderr.buffer)} if echo else {}
        )
        self._lock = threading.Lock()
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._partial = b""

    def write(self, data: bytes, stream: str) -> None:
        with self._lock:
            self._log.write(data)
            self._log.flush()
            if stream == "stderr":
                text = (self._partial + data).decode(errors="replace").split("\n")
                self._partial = text.pop().encode()
                self._stderr_tail.extend(line for line in text if line.strip())
            if self._echo:
                console = self._console["stderr" if stream == "stderr" else "stdout"]
                text = console.text(data)
                if self._prefix:
                    text = "".join(self._prefix + line for line in text.splitlines(keepends=True))
                console.out.write(text.encode())
                console.out.flush()

    def log(self, line: str) -> None:
        """mltrain's own line about the run (console and std_log)."""
        self.write(f"[mltrain] {line}\n".encode(), "stdout")

    def build_log(self, line: str) -> None:
        """A line of environment-build output (console and logs/build_log.txt)."""
        with self._lock, open(self._build_log_path, "a") as f:
            f.write(line + "\n")
        if self._echo:
            sys.stdout.write(f"[build] {escape_controls(line)}\n")
            sys.stdout.flush()

    def stderr_tail(self, lines: int = 10) -> list[str]:
        tail = list(self._stderr_tail)
        if self._partial.strip():
            tail.append(self._partial.decode(errors="replace"))
        return tail[-lines:]

    def close(self) -> None:
        with self._lock:
            self._log.close()
