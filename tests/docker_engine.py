"""A real Docker engine for the tests that need one (tests/docker, the Docker path of tests/ssh),
started once per test session and stopped by its PID; a plugin of tests/conftest.py.

dockerd runs with its own data root, exec root and unix socket in a temporary folder, without
iptables or a bridge (only the ``host`` and ``none`` networks exist). No registry can be reached,
so base images are made locally: a Debian bookworm root file system with Python (debootstrap,
cached as a tarball in ``~/.cache/mltrain-test/images``) and a busybox image without Python.
Code under test finds the engine through ``DOCKER_HOST``, set for the whole session.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_CACHE = Path(os.environ.get("MLTRAIN_TEST_CACHE", Path.home() / ".cache" / "mltrain-test"))
PYTHON_IMAGE = "mltrain-test/python:bookworm"
BUSYBOX_IMAGE = "mltrain-test/busybox:latest"
IMAGES_DIR = TEST_CACHE / "images"
ROOTFS_TARBALL = IMAGES_DIR / "python-bookworm.tar"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


@dataclass
class Engine:
    base_url: str
    root: Path
    pid: int
    storage_driver: str


def _dockerd() -> str | None:
    found = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)


def _ping(base_url: str) -> bool:
    import docker

    try:
        client = docker.APIClient(base_url=base_url, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _stop(pid: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to ``pid`` (dockerd's, from its pidfile), SIGKILL if it has not ended after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)  # dockerd is our child: reap it (a zombie still answers kill 0)
    except subprocess.TimeoutExpired:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _unmount_under(root: Path) -> None:
    """Unmount what dockerd left mounted under ``root`` (its network namespace file)."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_detached(root: Path) -> None:
    """Remove ``root`` in a process that outlives this one: deleting a data root of image layers (tens of
    thousands of files, gigabytes) took 30-140 s on a loaded machine, and no test waits for it. Each
    session starts its engine in a new folder, so nothing of this one is read again."""
    lower = " ".join(f"{tool} {args}" for tool, args in (("ionice", "-c 3"), ("nice", "-n 19")) if shutil.which(tool))
    # the shell starts rm in the background and returns at once: rm is then nobody's child to wait for
    script = f'{lower} rm -rf --one-file-system -- "$1" </dev/null >/dev/null 2>&1 &'
    subprocess.run(["sh", "-c", script, "sh", str(root)], check=False, start_new_session=True)


def _start_dockerd(dockerd: str, root: Path, driver: str) -> tuple[subprocess.Popen[bytes] | None, str]:
    sock = root / "docker.sock"
    log = open(root / f"dockerd-{driver}.log", "wb")  # noqa: SIM115 - closed below
    cmd = [
        dockerd,
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--host=unix://{sock}",
        f"--pidfile={root / 'dockerd.pid'}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--storage-driver={driver}",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sock.exists() and _ping(f"unix://{sock}"):
            return proc, ""
        time.sleep(0.1)
    if proc.poll() is None:
        _stop(proc.pid, proc)
    tail = (root / f"dockerd-{driver}.log").read_text(errors="replace").strip().splitlines()[-5:]
    return None, "\n".join(tail)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A dockerd of this test session; ``DOCKER_HOST`` points at it while the session lasts."""
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root to start (the docker tests run as root, e.g. in CI)")
    dockerd = _dockerd()
    if dockerd is None:
        pytest.skip("dockerd is not installed and could not be installed (apt-get install docker.io)")
    # a short folder: a unix socket path must stay under 108 characters
    root = Path(tempfile.mkdtemp(prefix="mltd-", dir="/tmp"))
    proc, why = None, ""
    driver = ""
    for driver in ("overlay2", "vfs"):
        proc, problem = _start_dockerd(dockerd, root, driver)
        if proc is not None:
            break
        why += f"\n--storage-driver={driver}:\n{problem}"
    if proc is None:
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"dockerd could not start:{why}")
    pid = int((root / "dockerd.pid").read_text().strip())
    base_url = f"unix://{root / 'docker.sock'}"
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = base_url
    try:
        yield Engine(base_url, root, pid, driver)
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        _stop(pid, proc)
        _unmount_under(root)
        _remove_detached(root)


@pytest.fixture(scope="session")
def docker_client(docker_engine: Engine) -> Iterator[object]:
    """A ``docker.DockerClient`` of the session's engine (``.api`` is the low-level client)."""
    import docker

    client = docker.DockerClient(base_url=docker_engine.base_url)
    yield client
    client.close()


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (the first ``URIs:`` of debian.sources)."""
    for line in DEBIAN_SOURCES.read_text().splitlines() if DEBIAN_SOURCES.exists() else []:
        if line.strip().startswith("URIs:"):
            return line.split(":", 1)[1].split()[0]
    sources = Path("/etc/apt/sources.list")
    for line in sources.read_text().splitlines() if sources.exists() else []:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            return parts[1] if not parts[1].startswith("[") else parts[2]
    raise RuntimeError("no Debian mirror found in the apt sources")


def _rootfs_tarball() -> Path:
    """The bookworm root file system with Python as a tarball (made once, ~70 s, then cached)."""
    from mltrain.environments.cache import file_lock

    with file_lock(IMAGES_DIR / ".python-bookworm.lock"):
        if ROOTFS_TARBALL.exists():
            return ROOTFS_TARBALL
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not os.path.exists(debootstrap):
            pytest.skip("debootstrap is not installed (scripts/system-deps.sh installs it)")
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=IMAGES_DIR))
        try:
            rootfs = work / "rootfs"
            cmd = [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            if out.returncode != 0:
                pytest.skip(f"debootstrap failed: {(out.stdout + out.stderr)[-1500:]}")
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (rootfs / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            partial = work / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            os.replace(partial, ROOTFS_TARBALL)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ROOTFS_TARBALL


def _has_image(client: object, name: str) -> bool:
    import docker

    try:
        client.images.get(name)  # type: ignore[attr-defined]
        return True
    except docker.errors.ImageNotFound:
        return False


@pytest.fixture(scope="session")
def python_image(docker_client: object) -> str:
    """``mltrain-test/python:bookworm``: Debian bookworm with python3 (3.11), venv and pip."""
    if not _has_image(docker_client, PYTHON_IMAGE):
        tarball = _rootfs_tarball()
        repo, tag = PYTHON_IMAGE.split(":")
        docker_client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)  # type: ignore[attr-defined]
    return PYTHON_IMAGE


@pytest.fixture(scope="session")
def busybox_image(docker_client: object) -> str:
    """``mltrain-test/busybox``: a shell and coreutils, no Python (FROM scratch + static busybox)."""
    if not _has_image(docker_client, BUSYBOX_IMAGE):
        busybox = shutil.which("busybox") or "/bin/busybox"
        if not os.path.exists(busybox):
            pytest.skip("busybox-static is not installed (scripts/system-deps.sh installs it)")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(busybox, arcname="busybox")
            dockerfile = (
                b"FROM scratch\nCOPY busybox /bin/busybox\n"
                b'RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/tmp"]\n'
                b'RUN ["/bin/busybox", "--install", "-s"]\n'
            )
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        context.seek(0)
        docker_client.images.build(  # type: ignore[attr-defined]
            fileobj=context, custom_context=True, tag=BUSYBOX_IMAGE, network_mode="host", rm=True
        )
    return BUSYBOX_IMAGE
