"""A detached ``python -m mltrain`` command (a ``-m`` sweep) tells the process that started it which run
it recorded, through a pipe, and moves its own output into that run's folder.

The starter (:func:`mltrain.runs.detach.start_command`) passes the pipe's write end and a pending log
file in the environment; :func:`announce` is called once the run is recorded. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

FD_ENV = "MLTRAIN_DETACHED_FD"  # the pipe's write end, inherited by the detached command
LOG_ENV = "MLTRAIN_DETACHED_LOG"  # the file its output goes to until it has a run folder
DRIVER_LOG = "logs/driver.log"  # a detached driver's own output (the summary, errors before the job ran)


def announce(run_id: str, run_dir: Path) -> None:
    """In a detached command: continue its output in ``run_dir``'s driver log (what it printed so far
    first) and send ``run_id`` to the starter. Does nothing in any other process, or a second time."""
    fd, pending = os.environ.pop(FD_ENV, None), os.environ.pop(LOG_ENV, None)
    if fd is None:
        return
    continue_output(pending, run_dir)
    try:
        os.write(int(fd), f"{run_id}\n".encode())
    except OSError:
        pass  # the starter is gone: the command goes on regardless
    finally:
        os.close(int(fd))


def continue_output(pending: str | None, run_dir: Path) -> None:
    """Send this process's standard output and error to ``run_dir``'s driver log from now on, after what
    it wrote to the file ``pending`` so far (then removed)."""
    log = run_dir / DRIVER_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "ab") as out:
        if pending:
            try:
                with open(pending, "rb") as before:
                    shutil.copyfileobj(before, out)
                os.unlink(pending)
            except OSError:
                pass  # the starter gave up and removed it
        out.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
