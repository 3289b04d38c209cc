"""A warm worker that brings its own code (standard library only; the driver ships this module to
the cluster by value, so nodes need no mltrain).

When a run needs nothing of a runtime_env (the ``system`` environment, no ``compute.runtime_env``
fields but variables) its warm actors start on Ray's ordinary workers, which Ray starts sooner than
workers with a runtime_env. The in-script API (with the warm worker and its fork server) and the
staged snapshot then come as zip archives through Ray's object store: :class:`BootedWarmWorker`
unpacks both into a private folder on its node, puts the API first on ``sys.path`` and
``PYTHONPATH``, sets the run's variables and serves as :class:`mltrain.remote.ray_warm.WarmWorker`
does, whose methods it passes on. ``shutdown`` removes the folder.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import zipfile
from typing import Any

API_DIR = "api"
SOURCE_DIR = "src"


def pack_dir(folder: str) -> bytes:
    """The regular files under ``folder`` as a zip archive (symlinks are left out)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for base, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(base, d)))
            for name in sorted(files):
                path = os.path.join(base, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    zf.write(path, os.path.relpath(path, folder))
    return buf.getvalue()


def unpack(data: bytes, dest: str) -> None:
    """A :func:`pack_dir` archive into ``dest`` (zipfile drops absolute and ``..`` parts of names)."""
    os.makedirs(dest, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(dest)


class BootedWarmWorker:
    """A :class:`~mltrain.remote.ray_warm.WarmWorker` whose API and snapshot came as archives."""

    def __init__(
        self,
        api: bytes,
        snapshot: bytes,
        env_vars: dict[str, str],
        modules: list[str],
        grace_s: float,
        max_output_mb: float,
    ) -> None:
        home = tempfile.mkdtemp(prefix="mltrain-warm-")
        try:
            api_dir, source = os.path.join(home, API_DIR), os.path.join(home, SOURCE_DIR)
            unpack(api, api_dir)
            unpack(snapshot, source)
            if "mltrain" in sys.modules:
                raise RuntimeError("this Ray worker already imported an mltrain: it cannot use the one shipped")
            sys.path.insert(0, api_dir)
            os.environ.update(env_vars)
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (api_dir, os.environ.get("PYTHONPATH")) if p)
            from mltrain.remote.ray_warm import WarmWorker

            self.worker = WarmWorker(modules, grace_s, max_output_mb, source=source, root=home)
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise

    # the calls of WarmWorker, passed on (Ray finds an actor's methods on its class)
    def touch(self) -> None:
        self.worker.touch()

    def ready(self) -> dict[str, Any]:
        return self.worker.ready()

    def start(self, *args: Any) -> dict:
        return self.worker.start(*args)

    def carry(self, snapshot: bytes) -> None:
        self.worker.carry(snapshot)

    def poll(self, run_id: str, offsets: list[int], timeout: float) -> dict[str, Any] | None:
        return self.worker.poll(run_id, offsets, timeout)

    def status(self, run_id: str) -> dict[str, Any] | None:
        return self.worker.status(run_id)

    def signal(self, run_id: str, signum: int) -> bool:
        return self.worker.signal(run_id, signum)

    def stop(self, run_id: str, grace_s: float, first: int, wait: bool) -> bool:
        return self.worker.stop(run_id, grace_s, first, wait)

    def archive(self, run_id: str, offset: int) -> bytes:
        return self.worker.archive(run_id, offset)

    def repack(self, run_id: str) -> dict[str, Any]:
        return self.worker.repack(run_id)

    def forget(self, run_id: str) -> None:
        self.worker.forget(run_id)

    def shutdown(self) -> None:
        self.worker.shutdown()
