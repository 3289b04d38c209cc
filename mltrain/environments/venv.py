"""The ``venv`` builder: ``uv venv`` + ``uv pip sync`` of the lock into ``<cache>/venvs/<hash>``.

Builds are atomic (made in a scratch folder, then renamed) and serialised per hash by a file
lock: of two processes building the same environment, one builds and the other waits and reuses
it. A folder that exists under its final name is complete. Its ready marker records when it was
built; the marker's modification time is when any workspace on this machine last used it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mltrain.environments.base import Cached, EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.cache import (
    cache_root,
    file_lock,
    find_python,
    process_started_at,
    try_lock,
    uv_bin,
)
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import EnvironmentSpecError
from mltrain.remote.procs import run_streaming
from mltrain.workspace.paths import folder_size

READY_MARKER = ".mltrain-ready"
LOCK_FILE = "requirements.lock"
SCRATCH_PREFIX = ".build-"
TRASH_PREFIX = ".trash-"


def venvs_root() -> Path:
    return cache_root() / "venvs"


def venv_path(env_hash: str) -> Path:
    return venvs_root() / env_hash[:24]


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _built_at(marker: Path) -> float:
    try:
        return float(json.loads(marker.read_text()).get("built_at", 0.0))
    except (OSError, ValueError, AttributeError):
        return 0.0


def _touch(marker: Path) -> None:
    try:
        os.utime(marker)
    except OSError:
        pass


def _remove_leftovers(root: Path, name: str) -> None:
    """Scratch and trash folders of ``name`` left by a killed build (the caller holds its lock)."""
    for prefix in (SCRATCH_PREFIX, TRASH_PREFIX):
        for old in root.glob(f"{prefix}{name}-*"):
            shutil.rmtree(old, ignore_errors=True)


class VenvBuilder(EnvironmentBuilder):
    kind = "venv"

    def check(self, env: ResolvedEnvironment) -> None:
        if not (venv_path(env.hash) / READY_MARKER).exists():
            find_python(env.spec.python)  # raises a clear error when that Python is not installed

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        target = venv_path(env.hash)
        marker = target / READY_MARKER
        if not rebuild and marker.exists():
            _touch(marker)
            return self._result(env, target, cached=True)

        def waiting() -> None:
            log(f"waiting for another process that is building environment {env.spec.name} ({env.hash[:12]})")

        with file_lock(_lock_path(target), on_wait=waiting):
            if marker.exists() and (not rebuild or _built_at(marker) >= process_started_at()):
                log(f"environment {env.spec.name} was built by another process; reusing {target}")
                _touch(marker)
                return self._result(env, target, cached=True)
            size = self._build(env, target, log)
        return self._result(env, target, cached=False, size=size)

    def present(self, env_hash: str, location: str) -> bool | None:
        return (Path(location or venv_path(env_hash)) / READY_MARKER).exists()

    def size(self, env_hash: str, location: str) -> int | None:
        folder = Path(location or venv_path(env_hash))
        return folder_size(folder)[0] if folder.is_dir() else None

    def last_used(self, env_hash: str, location: str) -> float | None:
        return venv_last_used(env_hash)

    def cached(self) -> list[Cached]:
        return cached_venvs()

    def remove(self, env_hash: str, location: str, older_than: float | None = None) -> bool:
        return remove_venv(env_hash, older_than)

    @staticmethod
    def _step(env: ResolvedEnvironment, cmd: list[str], log: LogFn, cmd_env: dict[str, str]) -> None:
        code, tail = run_streaming(cmd, log, env=cmd_env)
        if code != 0:
            raise EnvironmentSpecError(
                f"environment {env.spec.name}: the build failed (uv {' '.join(cmd[1:3])} exited {code}):\n    "
                + "\n    ".join(line for line in tail[-15:] if line.strip()),
                hint="fix the environment spec; the whole build log is in the run's logs/build_log.txt "
                "(mltrain runs logs RUN_ID --build)",
            )

    def _result(self, env: ResolvedEnvironment, target: Path, cached: bool, size: int | None = None) -> Materialised:
        return Materialised(
            self.kind,
            env.hash,
            str(target),
            str(target / "bin" / "python"),
            {**env.spec.job_env, "VIRTUAL_ENV": str(target)},
            cached=cached,
            size_bytes=size,
        )

    def _build(self, env: ResolvedEnvironment, target: Path, log: LogFn) -> int:
        """Build ``env`` into ``target`` (replacing it); the caller holds the lock. Returns its size."""
        interpreter = find_python(env.spec.python)
        root = target.parent
        root.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(root, target.name)
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{target.name}-", dir=root))
        scratch.chmod(0o755)  # mkdtemp makes it private; the venv is not
        started = time.monotonic()
        count = sum(1 for line in env.lock.splitlines() if line.strip() and not line.startswith("#"))
        log(
            f"building environment {env.spec.name}: Python {env.spec.python} ({interpreter}), "
            f"{count} locked packages, hash {env.hash[:12]}, into {target}"
        )
        cmd_env = {**os.environ, **env.spec.build_env}
        cmd_env.pop("VIRTUAL_ENV", None)
        try:
            self._step(
                env, [uv_bin(), "venv", "--quiet", "--relocatable", "--python", interpreter, str(scratch)], log, cmd_env
            )
            if env.lock:
                lock_file = scratch / LOCK_FILE
                lock_file.write_text(env.lock)
                sync = [uv_bin(), "pip", "sync", "--python", str(scratch / "bin" / "python"), str(lock_file)]
                self._step(env, sync, log, cmd_env)
            info = {"hash": env.hash, "name": env.spec.name, "python": env.spec.python, "built_at": time.time()}
            (scratch / READY_MARKER).write_text(json.dumps(info) + "\n")
            trash = None
            if target.exists():
                trash = root / f"{TRASH_PREFIX}{target.name}-{os.getpid()}"
                os.rename(target, trash)
            os.rename(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        _compile_in_background(target, log)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        size = folder_size(target)[0]
        log(f"built environment {env.spec.name} in {time.monotonic() - started:.1f} s ({size / 1e6:.0f} MB)")
        return size


def _compile_in_background(target: Path, log: LogFn) -> None:
    """Compile the venv's modules to bytecode in a detached, low-priority process, so the build is
    ready at once and later jobs neither compile sources nor depend on PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [str(target / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(target / "lib")]
    try:
        subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: os.nice(10),
        )
        log("compiling bytecode in the background")
    except OSError as exc:  # only a speed-up: a venv without bytecode works
        log(f"could not start bytecode compilation: {exc}")


def venv_last_used(env_hash: str) -> float | None:
    """When any workspace on this machine last used the venv (None when it is not built)."""
    try:
        return (venv_path(env_hash) / READY_MARKER).stat().st_mtime
    except OSError:
        return None


def cached_venvs() -> list[Cached]:
    """The built venvs in the cache (hash, name, folder, last use on this machine)."""
    root = venvs_root()
    out: list[Cached] = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        marker = folder / READY_MARKER
        if folder.name.startswith(".") or not marker.is_file():
            continue
        try:
            text = marker.read_text()
            last_used = marker.stat().st_mtime
        except OSError:
            continue
        try:
            info = json.loads(text)
        except ValueError:
            info = {"hash": text.strip()}  # the marker of older versions: the hash alone
        if not isinstance(info, dict) or not str(info.get("hash") or "").startswith(folder.name):
            continue  # not a venv of this cache layout
        out.append(Cached(str(info["hash"]), str(info.get("name") or "") or None, str(folder), last_used))
    return out


def remove_venv(env_hash: str, older_than: float | None = None) -> bool:
    """Delete the venv of ``env_hash`` unless it is being built, or (with ``older_than``) was used
    since that time. The folder disappears at once (renamed aside, then deleted)."""
    target = venv_path(env_hash)
    fd = try_lock(_lock_path(target))
    if fd is None:
        return False  # a build of it is running
    try:
        if not target.exists():
            return False
        last = venv_last_used(env_hash)
        if older_than is not None and last is not None and last >= older_than:
            return False
        trash = target.parent / f"{TRASH_PREFIX}{target.name}-{os.getpid()}"
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True  # the lock file stays: deleting it would let two processes lock different files
    finally:
        os.close(fd)


def remove_leftovers() -> list[Path]:
    """Delete scratch and trash folders of builds that were killed (none of them is in use)."""
    root = venvs_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        if not folder.name.startswith((SCRATCH_PREFIX, TRASH_PREFIX)):
            continue
        name = folder.name.split("-", 2)[1] if folder.name.count("-") >= 2 else ""
        fd = try_lock(_lock_path(root / name)) if name else None
        if fd is None:
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed
