"""Start-up in parallel: a forked child composes the Hydra config while the parent imports the
run driver and the workspace (SQLAlchemy); the child hands the resolved config over a pipe and the
parent runs the job. Used for a single run on POSIX; anything with an option (``-m``, ``--cfg``,
``--help``, ...) runs in one process as usual. ``MLTRAIN_NO_PREFORK=1`` turns it off. A command line
run again takes what it composed to last time (:mod:`mltrain.config.recall`) and forks nothing.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def applicable(argv: list[str]) -> bool:
    return hasattr(os, "fork") and not os.environ.get("MLTRAIN_NO_PREFORK") and not any(a.startswith("-") for a in argv)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


Payload = dict[str, Any]  # {"config": ..., "overrides": [...], "env": {...}}


def compose_forked(
    argv: list[str],
    meanwhile: Callable[[], Any],
    check: Callable[[Payload], None] | None = None,
    digest: str | None = None,
) -> tuple[Payload | None, int, Any]:
    """Compose ``argv`` in a forked child (which also runs ``check`` on what it composed) while this
    process calls ``meanwhile()``; return the composed payload (None when composition failed or there
    was nothing to run: the child said why), the child's exit code and what ``meanwhile`` returned.
    With the environment's ``digest`` (:func:`mltrain.config.recall.environment_digest`), the child
    remembers what it composed for the next run of ``argv`` (:func:`mltrain.config.recall.remember`)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: compose, hand over, exit without running anything else
        os.close(read_fd)
        code = 1
        try:
            from mltrain.config import app

            sent: list[Payload] = []

            def send(config: dict, overrides: list[str], env_set: dict[str, str]) -> None:
                payload = {"config": config, "overrides": overrides, "env": env_set}
                if check is not None:
                    check(payload)
                with os.fdopen(write_fd, "wb") as out:
                    out.write(json.dumps(payload).encode())
                sent.append(payload)

            composing = app.App(handoff=send, digest=digest)
            code = composing.main(argv)
            if sent and composing.read is not None:
                from mltrain.config import recall

                recall.remember(argv, sent[0], composing.read)
        except BaseException:  # noqa: BLE001 - os._exit below would end the child without a word
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    try:
        warm = meanwhile()  # the expensive imports, while the child composes
        data = _read_all(read_fd)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return (json.loads(data) if data else None), code, warm


@contextmanager
def start_up_objects_frozen() -> Iterator[None]:
    """No garbage collections inside; the objects made meanwhile are then frozen (``gc.freeze``):
    collections never scan them again. Start-up makes ~50k objects that live as long as the process
    (modules, the config, the workspace) and little cyclic garbage, so the collections it would
    trigger (~30 ms of CPU) find nothing; a child forked meanwhile (the composing one) never collects."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main(argv: list[str]) -> int:
    """Compose in a child, run in the parent; return the exit code."""

    def prewarm() -> Any:
        from mltrain.compute.ssh import prespawn  # (the entry point started its ssh clients)
        from mltrain.runs import preconnect

        preconnect.start(argv)  # connecting waits on the network while the rest is imported
        prespawn.discard()  # the clients no connection took (its config changed)
        from mltrain.runs import driver

        return driver.prewarm(argv)

    from mltrain.config import recall

    digest = recall.environment_digest()
    with start_up_objects_frozen():
        payload = recall.recall(argv, digest)  # this command line composed to it before, nothing changed since
        if payload is None:
            payload, code, prewarmed = compose_forked(argv, prewarm, digest=digest)
        else:
            code, prewarmed = 0, prewarm()
    from mltrain.runs import driver

    if payload is None:
        driver.end_prewarm()
        return code

    os.environ.update(payload["env"])  # hydra.job.env_set, as Hydra's run would set it
    return driver.run_from_config(payload["config"], payload["overrides"], prewarmed=prewarmed)
