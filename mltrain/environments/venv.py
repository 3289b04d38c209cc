"""The ``venv`` builder: ``uv venv`` + ``uv pip sync`` of the lock into ``<cache>/venvs/<hash>``.

Builds are atomic (made in a scratch folder, then renamed) and serialised per hash by a file
lock: of two processes building the same environment, one builds and the other waits and reuses
it. A folder that exists under its final name is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.cache import cache_root, dir_size, file_lock, find_python, uv_bin
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import EnvironmentSpecError
from mltrain.procs import run_streaming

READY_MARKER = ".mltrain-ready"


def venvs_root() -> Path:
    return cache_root() / "venvs"


def venv_path(env_hash: str) -> Path:
    return venvs_root() / env_hash[:24]


class VenvBuilder(EnvironmentBuilder):
    kind = "venv"

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        target = venv_path(env.hash)
        python = target / "bin" / "python"
        if not rebuild and (target / READY_MARKER).exists():
            return self._result(env, target, cached=True)
        with file_lock(venvs_root() / f".{target.name}.lock"):
            if not rebuild and (target / READY_MARKER).exists():  # built by another process meanwhile
                log(f"environment {env.spec.name} was built by another process; reusing {target}")
                return self._result(env, target, cached=True)
            self._build(env, target, log)
        assert python.exists()
        return self._result(env, target, cached=False)

    @staticmethod
    def _step(env: ResolvedEnvironment, cmd: list[str], log: LogFn, cmd_env: dict[str, str]) -> None:
        code, tail = run_streaming(cmd, log, env=cmd_env)
        if code != 0:
            raise EnvironmentSpecError(
                f"environment {env.spec.name}: the build failed ({' '.join(cmd[1:3])} exited {code}):\n    "
                + "\n    ".join(tail[-12:]),
                hint="fix the environment spec; the whole build log is in the run's logs/build_log.txt",
            )

    def _result(self, env: ResolvedEnvironment, target: Path, cached: bool) -> Materialised:
        extra = {"VIRTUAL_ENV": str(target)}
        return Materialised(
            self.kind,
            env.hash,
            str(target),
            str(target / "bin" / "python"),
            {**env.spec.env_vars, **extra},
            cached=cached,
        )

    def _build(self, env: ResolvedEnvironment, target: Path, log: LogFn) -> None:
        interpreter = find_python(env.spec.python)
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=venvs_root()))
        started = time.monotonic()
        log(f"building environment {env.spec.name} (Python {env.spec.python}, hash {env.hash[:12]}) in {target}")
        cmd_env = {**os.environ, **env.spec.build_env}
        cmd_env.pop("VIRTUAL_ENV", None)
        try:
            self._step(
                env, [uv_bin(), "venv", "--quiet", "--relocatable", "--python", interpreter, str(scratch)], log, cmd_env
            )
            if env.lock:
                lock_file = scratch / "requirements.lock"
                lock_file.write_text(env.lock)
                self._step(
                    env,
                    [uv_bin(), "pip", "sync", "--python", str(scratch / "bin" / "python"), str(lock_file)],
                    log,
                    cmd_env,
                )
            (scratch / READY_MARKER).write_text(env.hash + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        log(
            f"built environment {env.spec.name} in {time.monotonic() - started:.1f} s ({dir_size(target) / 1e6:.0f} MB)"
        )


def venv_size(env_hash: str) -> int:
    """Disk use of the venv of ``env_hash`` (0 when it is not built)."""
    target = venv_path(env_hash)
    return dir_size(target) if target.exists() else 0
