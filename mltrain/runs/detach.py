"""Detached runs: recorded now, driven by a process of their own that outlives the one that started them.

``start`` records a checked config as a Queued run and starts its driver (``python -m
mltrain.runs.detach``) in a session of its own (no terminal: closing one sends it no SIGHUP), with
its standard input from /dev/null and its output in the run folder (``logs/driver.log``). The driver
gets the config (secrets included: never written to a file or a command line) through a pipe, then
builds the plan (environment, snapshot), runs the trial under the recorded id and finalizes it as
``python -m mltrain`` does. Its record names the driver's pid from the start, so a driver that dies
is recovered like any lost driver (:mod:`mltrain.runs.recovery`).

``start_command`` detaches a whole ``python -m mltrain`` command instead (a ``-m`` sweep): it returns
once the command has recorded its run, or with the command's own error when it ended before that.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.configs import redact_overrides, redact_secrets
from mltrain.errors import MltrainError
from mltrain.remote.procs import hostname, start_token
from mltrain.runs.arguments import job_argv
from mltrain.runs.handoff import DRIVER_LOG, FD_ENV, LOG_ENV
from mltrain.runs.result import EXIT_CODES
from mltrain.workspace.runs import FAILED, TERMINAL, new_run_id

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

DETACHED_TAG = "mltrain.detached"
POLL_S = 0.1


@dataclass(frozen=True)
class Detached:
    """A run that was started detached: its id, folder and driver process."""

    run_id: str
    run_dir: Path
    pid: int


def follow_hint(run_id: str) -> str:
    """The lines printed for a detached run: how to follow it."""
    return (
        f"run {run_id} started detached\n"
        f"  follow: mltrain runs logs {run_id} -f\n"
        f"  wait:   mltrain runs wait {run_id}\n"
        f"  cancel: mltrain runs cancel {run_id}"
    )


def _driver_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)  # the driver imports the project's own _target_ modules from its cwd
    return env


def record_queued(
    ws: Workspace,
    config: dict[str, Any],
    overrides: list[str],
    driver_pid: int,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> tuple[str, Path]:
    """Record ``config`` (composed and checked) as a Queued run driven by process ``driver_pid`` of this
    host; its id and folder. The trial that runs it completes the record (:func:`run_recorded`)."""
    run_id = run_id or new_run_id()
    run_dir = ws.run_dir(run_id)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    job = config["job"]
    ws.runs.create(
        run_id,
        str(config["experiment_name"]),
        config=redact_secrets(config),
        overrides=redact_overrides(overrides),
        arguments=job_argv(job["arguments"], job["args"], job.get("bool_style", "flag")),
        run_dir=str(run_dir),
        script=str(job["script"]),
        env_name=str(config["environment"].get("name") or ""),
        driver_host=hostname(),
        driver_pid=driver_pid,
        driver_start=start_token(driver_pid),
    )
    if tags:
        ws.runs.set_tags(run_id, tags)
    return run_id, run_dir


def start(
    ws: Workspace,
    config: dict[str, Any],
    overrides: list[str],
    env_set: dict[str, str],
    tags: dict[str, str] | None = None,
    env_hash: str | None = None,
) -> Detached:
    """Record ``config`` (composed and checked) as a Queued run and start its detached driver.
    ``env_hash``: run with the recorded environment of that hash (a rerun)."""
    from mltrain.runs.job_data import has_data
    from mltrain.runs.output import STD_LOG

    if has_data(config["job"]):  # an unknown data asset or version: refused before anything is recorded
        from mltrain.runs.inputs import check_data_refs

        check_data_refs(ws, config["job"])
    run_id = new_run_id()
    run_dir = ws.run_dir(run_id)
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / STD_LOG).touch()  # `mltrain runs logs ID -f` follows it from the start
    read_fd, write_fd = os.pipe()
    try:
        with open(run_dir / DRIVER_LOG, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mltrain.runs.detach"],
                stdin=read_fd,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=os.getcwd(),
                env=_driver_env(),
                start_new_session=True,
                close_fds=True,
            )
    finally:
        os.close(read_fd)
    with os.fdopen(write_fd, "wb") as pipe:  # closed unwritten on an error: the driver exits at once
        record_queued(ws, config, overrides, proc.pid, {DETACHED_TAG: "true", **(tags or {})}, run_id=run_id)
        payload = {"run_id": run_id, "config": config, "overrides": overrides, "env": env_set, "env_hash": env_hash}
        pipe.write(json.dumps(payload).encode())
    _reap_later(proc)
    return Detached(run_id, run_dir, proc.pid)


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Collect the driver's exit status when it ends, so a long-lived caller (a notebook) keeps no zombie."""
    import threading

    threading.Thread(target=proc.wait, name=f"mltrain-reap-{proc.pid}", daemon=True).start()


def _fail_queued(ws: Workspace, run_id: str, run_dir: Path, exc: BaseException) -> None:
    """A detached run whose plan could not be built: Failed with the error, also in its log."""
    text = str(exc) if isinstance(exc, MltrainError) else f"{type(exc).__name__}: {exc}"
    from mltrain.runs.output import STD_LOG

    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with open(run_dir / STD_LOG, "a", encoding="utf-8") as f:
        f.write(f"[mltrain] error: {text}\n")
    ws.runs.set_status(run_id, FAILED, detail="the run could not start", error=text)


def run_recorded(
    ws: Workspace,
    config: dict[str, Any],
    overrides: list[str],
    run_id: str,
    echo: bool = True,
    resolved: ResolvedEnvironment | None = None,
) -> int:
    """Run the Queued run ``run_id`` of ``config`` to its end in this process, print its summary; the
    exit code. A plan that cannot be built (environment, snapshot, compute) fails the run with the error."""
    from mltrain.runs.control import RunCanceled
    from mltrain.runs.plan import RunPlan
    from mltrain.runs.summary import print_summary
    from mltrain.runs.trial import Trial
    from mltrain.text import print_error
    from mltrain.workspace.runs import CANCELED

    run_dir = ws.run_dir(run_id)
    try:
        with RunPlan.build(config, ws, resolved=resolved) as plan:
            result = Trial(plan, plan.config, overrides, echo=echo, run_id=run_id).run()
    except RunCanceled as exc:
        ws.runs.set_status(run_id, CANCELED, detail=str(exc), error=str(exc))
        return EXIT_CODES[CANCELED]
    except MltrainError as exc:
        _fail_queued(ws, run_id, run_dir, exc)
        print_error(exc)
        return 1
    except BaseException as exc:
        _fail_queued(ws, run_id, run_dir, exc)
        raise
    print_summary(result)
    return result.process_exit_code


def drive(payload: dict[str, Any]) -> int:
    """Run the recorded run of ``payload`` to its end (in the detached driver); its exit code."""
    from mltrain.runs.plan import open_workspace

    os.environ.update(payload.get("env") or {})  # hydra.job.env_set, as the command's own run sets it
    config, run_id = payload["config"], payload["run_id"]
    ws = open_workspace(config)
    resolved = None
    if payload.get("env_hash"):
        from mltrain.environments.records import recorded_environment

        resolved = recorded_environment(ws, config["environment"], payload["env_hash"])
    return run_recorded(ws, config, payload["overrides"], run_id, echo=False, resolved=resolved)


def driver_main() -> int:
    """``python -m mltrain.runs.detach``: read the payload from stdin, then drive the run."""
    from mltrain.plugin import project_importable

    data = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if not data:
        return 0  # the starting process failed to record the run: nothing to do
    project_importable()
    return drive(json.loads(data))


# -- a whole command, detached (sweeps) ----------------------------------------------------------------
class DetachedCommand:
    """``python -m mltrain ARGV`` started in a session of its own; :meth:`run_id` waits for the run it
    records (a sweep's parent), handed over through a pipe (:mod:`mltrain.runs.handoff`)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        read_fd, write_fd = os.pipe()
        log_fd, self.pending = tempfile.mkstemp(prefix="mltrain-detached-", suffix=".log")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mltrain", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=os.getcwd(),
                env={**_driver_env(), **(env or {}), FD_ENV: str(write_fd), LOG_ENV: self.pending},
                start_new_session=True,
                pass_fds=(write_fd,),
            )
        except BaseException:
            os.close(read_fd)
            os.unlink(self.pending)
            raise
        finally:
            os.close(log_fd)
            os.close(write_fd)
        self.pipe = os.fdopen(read_fd, "rb", buffering=0)

    def run_id(self, timeout: float = 600) -> str:
        """The id of the run the command recorded. When it ends before recording one, MltrainError with
        its output (ConfigError for a config error: exit code 2)."""
        import select

        deadline = time.monotonic() + timeout
        got = b""
        with self.pipe:
            while time.monotonic() < deadline:
                if select.select([self.pipe], [], [], POLL_S)[0]:
                    chunk = self.pipe.read(64)
                    got += chunk
                    if got.endswith(b"\n"):
                        _reap_later(self.proc)
                        return got.decode().strip()
                    if chunk:
                        continue
                    # end of the pipe without an id: the command ends without recording a run
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(max(0.0, deadline - time.monotonic()))
                if self.proc.poll() is not None:  # its forks may hold the pipe open: ask the process
                    return self._ended()
        raise MltrainError(
            f"python -m mltrain {' '.join(self.argv)} recorded no run within {timeout:g} s (pid {self.proc.pid})",
            hint=f"its output is in {self.pending}",
        )

    def _ended(self) -> str:
        from mltrain.errors import ConfigError
        from mltrain.text import escape_controls

        code = self.proc.returncode
        output = Path(self.pending).read_text(errors="replace").strip()
        Path(self.pending).unlink(missing_ok=True)
        error = ConfigError if code == 2 else MltrainError
        raise error(
            f"python -m mltrain {' '.join(self.argv)} ended (exit code {code}) before recording a run:\n"
            + escape_controls(output or "(no output)")
        )


def start_command(argv: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Start ``python -m mltrain ARGV`` detached; the id of the run it records (see :class:`DetachedCommand`)."""
    return DetachedCommand(argv, env).run_id(timeout)


# -- waiting -------------------------------------------------------------------------------------------
def exit_code(run: dict[str, Any]) -> int:
    """The exit code ``python -m mltrain`` gives a run that ended this way: 0 completed (1 with problems
    such as a failed registration), 1 failed, 130 canceled."""
    code = EXIT_CODES.get(run["status"], 1)
    return code if code or not run.get("problems") else 1


def wait_for(ws: Workspace, run_id: str, timeout: float | None = None, poll_s: float = 0.3) -> dict[str, Any]:
    """Wait until run ``run_id`` ended; its record. A run whose driver died meanwhile is recovered (Failed,
    "driver lost"). TimeoutError after ``timeout`` seconds."""
    from mltrain.runs.recovery import recover_orphans

    deadline = None if timeout is None else time.monotonic() + timeout
    next_recovery = 0.0
    while True:
        run = ws.runs.get(run_id)
        if run["status"] in TERMINAL:
            return run
        now = time.monotonic()
        if now >= next_recovery:
            next_recovery = now + 2.0
            recover_orphans(ws)
            continue
        if deadline is not None and now > deadline:
            raise TimeoutError(f"run {run_id} is still {run['status']} after {timeout:g} s")
        time.sleep(poll_s)


if __name__ == "__main__":
    code = driver_main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
