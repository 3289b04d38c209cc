"""The local target: the scoring server as a detached process group on this machine.

The server runs with the serving environment's interpreter, the server modules on ``PYTHONPATH``
(a shim folder), in its own session (so it outlives the command that deployed it and can be stopped
as a group), with stdout and stderr appended to ``<endpoint folder>/server.log``. ``memory_gb`` is
enforced by the server's watchdog; the process is identified by PID and start token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from mltrain.deploy.base import CONFIG_FILE, LOG_FILE, READY_FILE, DeployTarget, ServerPlan, Started
from mltrain.deploy.configs import LocalDeployConfig
from mltrain.errors import DeployError
from mltrain.remote.procs import group_exists, hostname, is_alive, signal_group, start_token, stop_group

STOP_GRACE_S = 10.0
_DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")


def tail_file(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LocalTarget(DeployTarget):
    """Serves on this machine (``python -m mltrain +deploy=local``, ``--target local``)."""

    kind = "local"
    Config = LocalDeployConfig

    @cached_property
    def _procs(self) -> dict[int, subprocess.Popen[bytes]]:
        """Servers this object started (so their exit status can be collected)."""
        return {}

    def _environ(self, plan: ServerPlan) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env.update(plan.built.env_vars)
        env["PYTHONPATH"] = str(plan.shim_dir)
        env["PYTHONUNBUFFERED"] = "1"
        venv = plan.built.env_vars.get("VIRTUAL_ENV")
        if venv:
            env["PATH"] = os.pathsep.join((os.path.join(venv, "bin"), env.get("PATH", "")))
        return env

    def start(self, plan: ServerPlan) -> Started:
        folder = plan.folder.resolve()
        config = folder / CONFIG_FILE
        config.write_text(json.dumps(plan.server_config(str(folder), memory_watchdog=True), indent=2))
        (folder / READY_FILE).unlink(missing_ok=True)
        with open(folder / LOG_FILE, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} mltrain: starting the server of endpoint {plan.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [plan.built.python, "-m", "mltrain.serving", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=self._environ(plan),
                start_new_session=True,
                close_fds=True,
            )
        self._procs[proc.pid] = proc
        return Started(pid=proc.pid, pid_start=start_token(proc.pid))

    def exited(self, started: Started) -> str | None:
        proc = self._procs.get(started.pid or 0)
        code = proc.poll() if proc is not None else None
        if code is not None:
            return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if proc is None and not is_alive(started.pid, started.pid_start):
            return "it is gone"
        return None

    def output_tail(self, folder: Path, started: Started, lines: int = 30) -> str:
        return tail_file(folder / LOG_FILE, lines)

    def probe(self, record: Mapping[str, Any]) -> tuple[bool | None, str]:
        if record.get("machine") and record["machine"] != hostname():
            return None, f"it runs on {record['machine']}: check it there"
        if is_alive(record.get("pid"), record.get("pid_start")):
            return True, ""
        return False, f"the server process {record.get('pid')} is gone (see `mltrain endpoints logs {record['name']}`)"

    def stop(self, record: Mapping[str, Any]) -> None:
        if record.get("machine") and record["machine"] != hostname():
            raise DeployError(
                f"endpoint {record['name']} runs on {record['machine']}, not on this machine",
                hint="run this command there",
            )
        pid = int(record.get("pid") or 0)
        proc = self._procs.pop(pid, None)
        if proc is not None:  # our own child (a failed start): reap it, or it lingers as a zombie
            signal_group(pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                signal_group(pid, signal.SIGKILL)
                proc.wait()
            deadline = time.monotonic() + STOP_GRACE_S
            while group_exists(pid) and time.monotonic() < deadline:  # its workers follow it
                time.sleep(0.05)
            if group_exists(pid):
                signal_group(pid, signal.SIGKILL)
        elif pid and is_alive(pid, record.get("pid_start")):
            stop_group(pid, STOP_GRACE_S)

    def logs(self, record: Mapping[str, Any], follow: bool) -> None:
        from mltrain.text import TerminalStream

        path = Path(record["folder"]) / LOG_FILE
        out = TerminalStream(sys.stdout.buffer)  # the server's output: control characters escaped
        try:
            f = open(path, "rb")  # noqa: SIM115 - followed below
        except FileNotFoundError:
            print(f"(no log yet: {path})", file=sys.stderr)
            return
        with f:
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    out.write(chunk)
                    continue
                if not follow or not is_alive(record.get("pid"), record.get("pid_start")):
                    return
                time.sleep(0.25)
