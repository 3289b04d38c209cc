"""Environments built on remote hosts, by mltrain's helper there (:mod:`mltrain.remote.ssh_agent`).

Once per host and hash: ``venv`` is a venv built by uv on the host (keyed by the same hash as
locally), ``system`` the host's own interpreter, ``docker`` the image the docker target would build
(same tag, Dockerfile and build context, its files sent through the host's blob cache) in the engine
the host's ``docker`` CLI reaches. A built environment is recorded as living there (``where``:
``ssh:HOST``), and ``mltrain envs prune`` removes it there (:meth:`RemoteEnvironments.drop`).

The hosts come from the compute target (mltrain/compute/ssh/) through small interfaces, so this layer
knows nothing of SSH itself: :class:`Host` (a machine the helper answers on), :class:`Hosts` (which
host to build on, which to skip) and :class:`Blobs` (how files reach a host's blob cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mltrain.environments.base import EnvironmentBuilder, Materialised
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.environments.base import LogFn
    from mltrain.environments.resolve import ResolvedEnvironment

DOCKER_FIX = (
    "install Docker on the host (its `docker` CLI on the PATH of SSH sessions, reaching an engine "
    "by DOCKER_HOST or the default socket), or use an environment with build: venv"
)


class Host(Protocol):
    """A machine mltrain's helper runs on (``mltrain.compute.ssh.conn.Remote``)."""

    label: str
    probe: dict[str, Any] | None

    @property
    def where(self) -> str:
        """Where an environment built there lives, as its record names it (``ssh:HOST``)."""

    def agent(
        self,
        *args: str,
        request: Any = None,
        timeout: float | None = 120.0,
        on_stderr: Callable[[str], None] | None = None,
    ) -> Any:
        """Run a helper command; its JSON answer (ComputeError naming the host when it fails)."""


class Hosts(Protocol):
    """The hosts a target builds on (``mltrain.compute.ssh.pool.HostPool``)."""

    def pick_host(self) -> Any:
        """A reachable :class:`Host`."""

    def skip_unless(self, problem: Callable[[Any], str | None], hint: str) -> None:
        """Skip each reachable host for which ``problem`` names one; ComputeError when none is left."""


class Blobs(Protocol):
    """How files reach a host's blob cache (``mltrain.compute.ssh.sync.BlobSync``)."""

    def send_blobs(self, remote: Any, missing: list[str], local: dict[str, Path]) -> int:
        """Upload the blobs ``missing`` on ``remote`` from their files in ``local``; bytes sent."""


class RemoteEnvBuilder(EnvironmentBuilder):
    """Builds an environment of ``kind`` on a host of ``envs`` (the least busy one)."""

    def __init__(self, envs: RemoteEnvironments, kind: str) -> None:
        self.envs = envs
        self.kind = kind

    def check(self, env: ResolvedEnvironment) -> None:
        """``build: docker``: a base image, and hosts whose Docker engine answers (others are skipped)."""
        if self.kind == "docker":
            from mltrain.environments.docker import require_base_image

            require_base_image(env)
            self.envs.require_docker(env)

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        """Built on the least busy host; other hosts build it when their first job comes, with the
        same ``log`` and, with ``rebuild``, built again there too (once per host in this process)."""
        self.envs.log = log
        if rebuild:
            self.envs.rebuild.add(env.hash)
        return self.envs.on(self.envs.hosts.pick_host(), env, log)


class RemoteEnvironments:
    """The environments a target built on its hosts (each once per host and hash; thread-safe)."""

    def __init__(self, hosts: Hosts, blobs: Blobs, offline: bool = False, offline_memory_s: float = 3600.0) -> None:
        self.hosts, self.blobs = hosts, blobs
        self.offline = offline  # compute.offline: every host builds from the wheels this machine ships
        self.offline_memory_s = offline_memory_s  # compute.offline_memory_s: how long a host's no-index note counts
        self.no_index: set[str] = set()  # hosts whose build found the package index unreachable
        self.prepared: ResolvedEnvironment | None = None  # the environment the target prepared last
        self._envs: dict[str, ResolvedEnvironment] = {}
        self._built: dict[tuple[str, str], Materialised] = {}
        self._lock = threading.Lock()
        self.rebuild: set[str] = set()  # hashes built again on each host (environment.rebuild)
        self.log: LogFn = lambda line: None  # where a build on a later host is announced (prepare's log)

    def builder(self, kind: str) -> EnvironmentBuilder:
        return RemoteEnvBuilder(self, kind)

    def built_on(self, host: Host, env: ResolvedEnvironment) -> bool:
        with self._lock:
            return (host.label, env.hash) in self._built

    def on(self, host: Host, env: ResolvedEnvironment, log: LogFn | None = None) -> Materialised:
        """``env`` built on ``host`` (once per host and hash; ``log``: prepare's by default)."""
        log = log or self.log
        rebuild = env.hash in self.rebuild
        self._envs[env.hash] = env
        key = (host.label, env.hash)
        with self._lock:
            if key in self._built:
                return replace(self._built[key], cached=True)
        assert host.probe is not None
        if env.spec.build == "system":
            python = host.probe["executable"]
            built = Materialised("system", env.hash, python, python, env.spec.job_env, cached=True, where=host.where)
        elif env.spec.build == "docker":
            built = self._image_on(host, env, log, rebuild)
        else:
            log(f"environment {env.spec.name} ({env.hash[:12]}) on {host.label}")
            answer = self._venv_on(host, env, log, rebuild)
            built = Materialised(
                "venv",
                env.hash,
                answer["location"],
                answer["python"],
                {**env.spec.job_env, "VIRTUAL_ENV": answer["location"]},
                cached=bool(answer["cached"]),
                where=host.where,
            )
        with self._lock:
            self._built[key] = built
        return built

    def _venv_on(self, host: Host, env: ResolvedEnvironment, log: LogFn, rebuild: bool) -> dict[str, Any]:
        """The helper's answer for the venv of ``env`` on ``host``: built there from the package index,
        or, when the host cannot reach it (``compute.offline``, or found so by a build), from the
        locked wheels this machine ships through the host's blob cache (only those it lacks travel)."""
        offline = self.offline or host.label in self.no_index or self._remembered(host, log)
        request: dict[str, Any] = {"hash": env.hash, "python": env.spec.python, "lock": env.lock}
        request.update(env=env.spec.build_env, rebuild=rebuild, offline=offline, wheels=None)
        answer: dict[str, Any] = host.agent("venv", request=request, timeout=None, on_stderr=log)
        if "no_index" in answer:
            self.no_index.add(host.label)
            said = answer["no_index"].strip().splitlines()[-1:] or ["no detail"]
            log(f"the build on {host.label} found no package index ({said[0]}); building from wheels of this machine")
            request["offline"] = True
            answer = host.agent("venv", request=request, timeout=None, on_stderr=log)
        if answer.get("missing") != "wheels":
            return answer
        from mltrain.environments.wheelhouse import wheelhouse
        from mltrain.workspace.blobs import sha256_file

        assert host.probe is not None
        local = {sha256_file(path): path for path in wheelhouse(env, host.probe, log)}
        request["wheels"] = [[path.name, sha, path.stat().st_size, 0o644] for sha, path in local.items()]
        missing = host.agent("venv", request=request, timeout=60).get("missing", [])
        size = sum(local[sha].stat().st_size for sha in missing if sha in local)
        why = "cannot reach the package index" if host.label in self.no_index else "is offline (compute.offline)"
        log(
            f"host {host.label} {why}: shipping {len(missing)} wheels ({size / 1e6:.1f} MB) from this machine"
            f" ({len(local) - len(missing)} of {len(local)} already there)"
        )
        self.blobs.send_blobs(host, missing, local)
        answer = host.agent("venv", request=request, timeout=None, on_stderr=log)
        if "missing" in answer:
            raise ComputeError(f"the wheels of environment {env.spec.name} did not reach {host.label}")
        return answer

    def _remembered(self, host: Host, log: LogFn) -> bool:
        """True (and said) when a build on ``host`` found no package index less than
        ``offline_memory_s`` ago (the host's probe says when): this build goes offline at once instead
        of trying the index again."""
        note = (host.probe or {}).get("no_index")
        if not note or not float(note["age_s"]) < self.offline_memory_s:
            return False
        self.no_index.add(host.label)
        log(
            f"host {host.label} found no package index {note['age_s'] / 60:.0f} min ago ({note['said']}): "
            f"building from wheels of this machine without trying it (tried again {self.offline_memory_s:g} s after "
            "that (compute.offline_memory_s), or once `mltrain compute check` finds it; compute.offline=true never "
            "tries it)"
        )
        return True

    def for_host(self, host: Host, built: Materialised) -> Materialised:
        """The environment ``built`` (on some host of this target) as it is on ``host``."""
        if built.where == host.where:
            return built
        env = self._envs.get(built.hash)
        if env is None:
            raise ComputeError(f"environment {built.hash[:12]} was not prepared by this target")
        return self.on(host, env)

    def require_docker(self, env: ResolvedEnvironment) -> None:
        """Skip the reachable hosts whose Docker engine does not answer (reported, like a host that is
        down); ComputeError naming each problem and the fix when no host is left."""

        def problem(host: Host) -> str | None:
            assert host.probe is not None
            if not host.probe.get("docker"):
                why = "docker is not installed on this host (no `docker` on the PATH of its SSH sessions)"
            else:
                try:
                    host.agent("image", request={"check": True}, timeout=60)
                    return None
                except ComputeError as exc:
                    why = exc.message.split(": ", 1)[-1] if "`image` failed" in exc.message else exc.message
            return f"environment {env.spec.name} has build: docker, but {why}"

        self.hosts.skip_unless(problem, DOCKER_FIX)

    def _image_on(self, host: Host, env: ResolvedEnvironment, log: LogFn, rebuild: bool) -> Materialised:
        """The image of ``env`` in ``host``'s Docker engine: the tag, Dockerfile and build context
        the docker target uses (its files sent through the host's blob cache), reused when there."""
        import platform
        import tempfile

        from mltrain.environments.docker import (
            LABEL_HASH,
            PYTHON,
            image_key,
            image_tag,
            require_base_image,
            write_build_context,
        )
        from mltrain.workspace.blobs import sha256_file

        assert host.probe is not None
        key = image_key(env)
        tag = image_tag(key)
        request: dict[str, Any] = {
            "tag": tag,
            "key": key,
            "label": LABEL_HASH,
            "base": require_base_image(env),
            "network": env.spec.docker_network,
            "build_args": env.spec.build_env,
            "files": None,
            "rebuild": rebuild,
        }
        answer = host.agent("image", request=request, timeout=60)
        if "missing" in answer:
            started = time.monotonic()
            log(
                f"building image {tag} for environment {env.spec.name} on {host.label} "
                f"(FROM {env.spec.base_image}, Python {env.spec.python}, hash {key[:12]})"
            )
            same_machine = host.probe.get("machine") == platform.machine()
            with tempfile.TemporaryDirectory(prefix="mltrain-docker-context-") as ctx:
                write_build_context(env, Path(ctx), copy_uv=same_machine)
                paths = sorted(p for p in Path(ctx).rglob("*") if p.is_file())
                local = {sha256_file(p): p for p in paths}
                by_path = {p: sha for sha, p in local.items()}
                request["files"] = [
                    (p.relative_to(ctx).as_posix(), by_path[p], p.stat().st_size, p.stat().st_mode & 0o777)
                    for p in paths
                ]
                missing = host.agent("image", request=request, timeout=60).get("missing", [])
                self.blobs.send_blobs(host, missing, local)
                answer = host.agent("image", request=request, timeout=None, on_stderr=log)
            if "missing" in answer:
                raise ComputeError(f"the build context of image {tag} did not reach {host.label}")
            size = f", {answer['size'] / 1e6:.0f} MB" if answer.get("size") else ""
            log(f"built image {tag} on {host.label} in {time.monotonic() - started:.1f} s{size}")
        return Materialised(
            "docker",
            env.hash,
            tag,
            PYTHON,
            env.spec.job_env,
            cached=bool(answer["cached"]),
            size_bytes=answer.get("size"),
            where=host.where,
        )

    def drop(self, host: Host, kind: str, location: str, older_than: float) -> tuple[bool, str]:
        """Delete the environment at ``location`` on ``host`` (a venv folder, an image tag) unless it
        was used there since ``older_than``: (removed or already gone, note)."""
        name = location.rstrip("/").rsplit("/", 1)[-1] if kind == "venv" else location
        answer = host.agent("drop", kind, name, repr(older_than), timeout=300)
        return bool(answer["removed"]) or answer["note"] == "already gone", str(answer["note"])
