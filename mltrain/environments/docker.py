"""The ``docker`` builder: a ResolvedEnvironment becomes an image ``mltrain-env:<hash[:24]>``.

The image is built FROM the spec's ``docker.base_image`` from a generated Dockerfile and a minimal
build context (the lock, the host's CA bundle, uv when the host's uv is a static binary): a venv of
the spec's Python at ``/opt/mltrain/venv`` with the lock installed by ``uv pip sync``. A tag that
exists (with the full hash in its label) is reused; of two processes building the same hash, one
builds and the other waits and reuses the image. A failed build tags nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections import deque
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.cache import cache_root, file_lock, process_started_at, uv_bin
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import ComputeError, EnvironmentSpecError

if TYPE_CHECKING:
    from docker import APIClient

IMAGE_REPO = "mltrain-env"
LABEL_HASH = "mltrain.env.hash"
LABEL_NAME = "mltrain.env.name"
PREFIX = "/opt/mltrain"
VENV = f"{PREFIX}/venv"
PYTHON = f"{VENV}/bin/python"
UV_IN_IMAGE = f"{PREFIX}/bin/uv"
CA_IN_IMAGE = f"{PREFIX}/build/ca-certificates.crt"
NO_PYTHON_MARK = "mltrain: the base image has no Python"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the classic builder colours the steps' stderr


# Bump when the generated Dockerfile changes what an image holds, so cached images are rebuilt.
RECIPE_VERSION = 2


def image_key(env: ResolvedEnvironment) -> str:
    """The content hash an image is tagged by: the environment's hash, the base image (which the
    hash of a venv spec leaves out) and the version of the Dockerfile recipe."""
    payload = {"env": env.hash, "base_image": env.spec.base_image, "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def image_tag(key: str) -> str:
    """``mltrain-env:<key[:24]>`` (the full key is in the image's ``mltrain.env.hash`` label)."""
    return f"{IMAGE_REPO}:{key[:24]}"


def engine_address(base_url: str | None = None) -> str:
    """Where the Docker engine is: ``base_url``, else ``$DOCKER_HOST``, else the default socket."""
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(base_url: str | None = None, timeout: float | None = 120) -> APIClient:
    """A low-level client of the engine (ping included); ComputeError when it cannot be reached."""
    import docker
    from docker.utils import kwargs_from_env

    kwargs: dict[str, Any] = kwargs_from_env()
    if base_url:
        kwargs["base_url"] = base_url
    address = engine_address(base_url)
    try:
        api = docker.APIClient(timeout=timeout, **kwargs)
        api.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException, requests and socket errors alike
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ComputeError(
            f"the Docker engine at {address} cannot be reached: {detail}",
            hint="start dockerd (or Docker Desktop), or point compute.base_url (or DOCKER_HOST) at a running engine",
        ) from exc
    return api


def require_base_image(env: ResolvedEnvironment) -> str:
    """The spec's base image; EnvironmentSpecError naming the config key when it has none."""
    if env.spec.base_image:
        return str(env.spec.base_image)
    raise EnvironmentSpecError(
        f"environment {env.spec.name} has no docker.base_image: a Docker image is built FROM it",
        hint=f"set environment.docker.base_image to an image with Python {env.spec.python} "
        f"(e.g. environment.docker.base_image=python:{env.spec.python}-slim)",
    )


def is_static_elf(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return False
            is64, little = head[4] == 2, head[5] == 1
            end = "<" if little else ">"
            if is64:
                (phoff,) = struct.unpack(end + "Q", head[32:40])
                phentsize, phnum = struct.unpack(end + "HH", head[54:58])
            else:
                (phoff,) = struct.unpack(end + "I", head[28:32])
                phentsize, phnum = struct.unpack(end + "HH", head[42:46])
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except (OSError, struct.error):
        return False
    if phentsize < 4 or len(table) < phentsize * phnum:
        return False
    for i in range(phnum):
        (p_type,) = struct.unpack(end + "I", table[i * phentsize : i * phentsize + 4])
        if p_type == 3:  # PT_INTERP: needs a dynamic loader
            return False
    return True


@cache
def uv_version() -> str:
    """The host's uv version (installed in images when its binary cannot be copied)."""
    out = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, timeout=30)
    parts = out.stdout.split()
    return parts[1] if out.returncode == 0 and len(parts) > 1 else ""


def host_ca_bundle() -> Path | None:
    """The CA bundle package downloads must trust: ``$SSL_CERT_FILE``, else Debian's bundle."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def dockerfile(env: ResolvedEnvironment, copy_uv: bool, with_ca: bool) -> str:
    """The Dockerfile of ``env``'s image (see ``write_build_context`` for the files it copies)."""
    spec = env.spec
    base = require_base_image(env)
    key = image_key(env)
    py = spec.python
    major, minor = py.split(".")
    ca = f"SSL_CERT_FILE={CA_IN_IMAGE} PIP_CERT={CA_IN_IMAGE} " if with_ca else ""
    find_python = f"$(command -v python{py} || command -v python3)"
    lines = [
        f"# Generated by mltrain for environment {spec.name} (hash {key}).",
        f"# Build it with: docker build --network {spec.docker_network} -t {image_tag(key)}"
        + "".join(f" --build-arg {k}" for k in spec.build_env)
        + " .",
        f"FROM {base}",
        # a clear error when the base image lacks the spec's Python (nothing is downloaded)
        f"RUN (command -v python{py} || python3 -c 'import sys; sys.exit(sys.version_info[:2] != ({major}, {minor}))')"
        f" >/dev/null 2>&1 || {{ echo '{NO_PYTHON_MARK} {py} (environment.python={py})' >&2; exit 3; }}",
    ]
    if with_ca:
        lines.append(f"COPY ca-certificates.crt {CA_IN_IMAGE}")
    if copy_uv:
        lines.append(f"COPY uv {UV_IN_IMAGE}")
    else:
        pin = f"uv=={uv_version()}" if uv_version() else "uv"
        lines.append(
            f'RUN PY="{find_python}" && "$PY" -m venv {PREFIX}/uv'
            f" && {ca}{PREFIX}/uv/bin/python -m pip install --quiet --no-cache-dir --disable-pip-version-check {pin}"
            f" && mkdir -p {PREFIX}/bin && ln -s {PREFIX}/uv/bin/uv {UV_IN_IMAGE}"
        )
    # environment.env_vars are not baked into the image (a secret would live in its layers): they are passed
    # when the container starts. Only the PIP_*/UV_* ones and the proxies reach the build, as build arguments
    # of the install; the proxies are Docker's predefined ones, which need no ARG (and so stay out of the
    # image's history and do not invalidate its build cache).
    lines.extend(f"ARG {k}" for k in spec.install_vars)
    lines.append(f"COPY requirements.lock {PREFIX}/requirements.lock")
    uv_env = f"{ca}UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_LINK_MODE=copy"
    install = f"{uv_env} {UV_IN_IMAGE} venv --quiet --python {py} {VENV}"
    if env.lock.strip():
        install += (
            f" && {uv_env} {UV_IN_IMAGE} pip sync --compile-bytecode --python {PYTHON} {PREFIX}/requirements.lock"
        )
    lines.append(f"RUN {install}")
    lines.append(f"ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH")
    # last, so that the layers above are shared by every environment on the same base image
    lines.append(f"LABEL {LABEL_HASH}={json.dumps(key)} {LABEL_NAME}={json.dumps(spec.name)}")
    return "\n".join(lines) + "\n"


def write_build_context(env: ResolvedEnvironment, dest: Path, copy_uv: bool = True) -> Path:
    """Write the Dockerfile of ``env`` and the files it copies into ``dest``; return ``dest``.

    For users who build the image elsewhere: ``docker build --network host -t TAG DEST``. This
    machine's uv goes in when it is a static binary and ``copy_uv`` (False: the image's machine
    is of another architecture), else the image installs uv with pip.
    """
    require_base_image(env)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    uv = uv_bin()
    copy_uv = copy_uv and is_static_elf(uv)
    if copy_uv:
        shutil.copy2(uv, dest / "uv")
    ca = host_ca_bundle()
    if ca is not None:
        shutil.copyfile(ca, dest / "ca-certificates.crt")
    (dest / "requirements.lock").write_text(env.lock)
    (dest / "Dockerfile").write_text(dockerfile(env, copy_uv=copy_uv, with_ca=ca is not None))
    return dest


def _created_at(info: dict[str, Any]) -> float:
    """The image's creation time (epoch seconds; 0 when unknown)."""
    from datetime import datetime, timezone

    text = str(info.get("Created") or "")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", text)
    if not match:
        return 0.0
    stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return stamp + float("0" + (match.group(2) or "")[:7])


def image_size(api: APIClient, tag: str) -> int | None:
    try:
        return int(api.inspect_image(tag).get("Size") or 0) or None
    except Exception:  # noqa: BLE001 - size is informational
        return None


def _build_hint(spec_python: str, tail: list[str]) -> str:
    text = "\n".join(tail).lower()
    if NO_PYTHON_MARK.lower() in text:
        return (
            f"use a base image with Python {spec_python} (environment.docker.base_image), "
            "or set environment.python to the version the image has"
        )
    if "no module named venv" in text or "ensurepip" in text or "no module named pip" in text:
        return "the base image needs Python's venv and pip modules (Debian: python3-venv, python3-pip) to install uv"
    if "certificate" in text or "tls" in text:
        return "package downloads in the build failed TLS: set SSL_CERT_FILE to the CA bundle of your network"
    if "failed to fetch" in text or "dns error" in text or "connection refused" in text:
        return (
            "the package index cannot be reached from the build: check environment.docker.network, "
            "or set environment.env_vars.UV_INDEX_URL to an index the build can reach"
        )
    return "fix the environment spec or the base image; the whole build log is in the run's logs/build_log.txt"


class DockerBuilder(EnvironmentBuilder):
    """Builds ``mltrain-env:<hash>`` images on a Docker engine (``base_url``: see ``engine_address``)."""

    kind = "docker"

    def __init__(self, base_url: str | None = None, api: APIClient | None = None) -> None:
        self.base_url = base_url
        self._api = api

    @property
    def api(self) -> APIClient:
        if self._api is None:
            self._api = connect(self.base_url)
        return self._api

    def check(self, env: ResolvedEnvironment) -> None:
        require_base_image(env)

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        require_base_image(env)
        key = image_key(env)
        tag = image_tag(key)
        if not rebuild and self._image(tag, key) is not None:
            return self._result(env, tag, cached=True)

        def waiting() -> None:
            log(f"waiting for another process that is building image {tag} of environment {env.spec.name}")

        with file_lock(cache_root() / "docker" / f".{key[:24]}.lock", on_wait=waiting):
            info = self._image(tag, key)
            if info is not None and (not rebuild or _created_at(info) >= process_started_at()):
                log(f"image {tag} of environment {env.spec.name} was built by another process; reusing it")
                return self._result(env, tag, cached=True)
            self._ensure_base_image(env, log)
            size = self._build(env, key, tag, log, nocache=rebuild)
        return self._result(env, tag, cached=False, size=size)

    def size(self, env_hash: str, location: str) -> int | None:
        try:
            return image_size(self.api, location)
        except Exception:  # noqa: BLE001 - the size is only informative (an engine that cannot be reached)
            return None

    def remove(self, env_hash: str, location: str, older_than: float | None = None) -> bool:
        """Untag the image ``location`` (its layers go when no other tag or container uses them)."""
        import docker

        try:
            self.api.remove_image(location, noprune=False)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            raise EnvironmentSpecError(
                f"cannot remove image {location}: {exc.explanation or exc}",
                hint="a container may still use it: remove that container first (docker ps -a)",
            ) from exc
        return True

    def _result(self, env: ResolvedEnvironment, tag: str, cached: bool, size: int | None = None) -> Materialised:
        address = engine_address(self.base_url)
        where = "local" if address.startswith("unix://") else f"docker:{address}"  # an engine elsewhere holds it
        return Materialised(
            self.kind, env.hash, tag, PYTHON, env.spec.job_env, cached=cached, size_bytes=size, where=where
        )

    def _image(self, tag: str, key: str) -> dict[str, Any] | None:
        """The inspection of ``tag`` when it is the image of ``key``, else None."""
        import docker

        try:
            info = self.api.inspect_image(tag)
        except docker.errors.ImageNotFound:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        return info if labels.get(LABEL_HASH) == key else None

    def _ensure_base_image(self, env: ResolvedEnvironment, log: LogFn) -> None:
        import docker

        base = require_base_image(env)
        try:
            self.api.inspect_image(base)
            return
        except docker.errors.ImageNotFound:
            pass
        log(f"base image {base} is not in the Docker engine; pulling it")
        problem = ""
        try:
            for chunk in self.api.pull(base, stream=True, decode=True):
                if chunk.get("error"):
                    problem = str(chunk["error"])
                elif chunk.get("status") and not chunk.get("progressDetail"):
                    log(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except Exception as exc:  # noqa: BLE001 - APIError, timeouts, bad names
            problem = getattr(exc, "explanation", None) or str(exc)
        if not problem:
            try:
                self.api.inspect_image(base)
                return
            except docker.errors.ImageNotFound:
                problem = "the pull ended without the image"
        raise EnvironmentSpecError(
            f"environment {env.spec.name}: base image {base} is not in the Docker engine at "
            f"{engine_address(self.base_url)} and cannot be pulled: {str(problem).strip()[:400]}",
            hint=f"make {base} available to that engine (docker pull / docker load / docker import), "
            "or set environment.docker.base_image to an image it has",
        )

    def _build(self, env: ResolvedEnvironment, key: str, tag: str, log: LogFn, nocache: bool) -> int | None:
        """Build and tag the image (the caller holds the lock); returns its size."""
        import docker

        started = time.monotonic()
        log(
            f"building image {tag} for environment {env.spec.name} "
            f"(FROM {env.spec.base_image}, Python {env.spec.python}, hash {key[:12]})"
        )
        tail: deque[str] = deque(maxlen=30)
        error = ""
        partial = ""

        def emit(text: str) -> None:
            nonlocal partial
            pieces = (partial + text).split("\n")
            partial = pieces.pop()
            for line in pieces:
                line = _ANSI.sub("", line).rstrip("\r")
                tail.append(line)
                log(line)

        with tempfile.TemporaryDirectory(prefix="mltrain-docker-context-") as ctx:
            write_build_context(env, Path(ctx))
            try:
                for chunk in self.api.build(
                    path=ctx,
                    tag=tag,
                    rm=True,
                    forcerm=True,
                    nocache=nocache,
                    pull=False,
                    decode=True,
                    timeout=None,
                    network_mode=env.spec.docker_network,
                    buildargs=env.spec.build_env or None,
                    labels={LABEL_HASH: key, LABEL_NAME: env.spec.name},
                ):
                    if "stream" in chunk:
                        emit(str(chunk["stream"]))
                    elif chunk.get("error"):
                        error = str(chunk["error"]).strip()
                    elif chunk.get("status"):
                        emit(str(chunk["status"]) + "\n")
            except docker.errors.APIError as exc:
                error = str(exc.explanation or exc)
            if partial:
                emit("\n")
        if error:
            log(error)
            tail.append(error)
            lines = [line for line in tail if line.strip()][-12:]
            raise EnvironmentSpecError(
                f"environment {env.spec.name}: the image build failed:\n    " + "\n    ".join(lines),
                hint=_build_hint(env.spec.python, lines),
            )
        if self._image(tag, key) is None:
            raise EnvironmentSpecError(
                f"environment {env.spec.name}: the build ended without tagging {tag}",
                hint="see the build log in the run's logs/build_log.txt",
            )
        size = image_size(self.api, tag)
        mb = f", {size / 1e6:.0f} MB" if size else ""
        log(f"built image {tag} in {time.monotonic() - started:.1f} s{mb}")
        return size
