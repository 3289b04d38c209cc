"""The docker environment builder on its own: the build context users can build elsewhere, and the
checks it makes of the host's uv binary."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mltrain.environments.docker import (
    PYTHON,
    dockerfile,
    image_key,
    image_tag,
    is_static_elf,
    write_build_context,
)
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.environments.spec import EnvSpec
from mltrain.errors import EnvironmentSpecError


def resolved(base_image: str | None, lock: str = "six==1.17.0\n", **env_vars: str) -> ResolvedEnvironment:
    spec = EnvSpec(
        name="ctx",
        build="docker",
        python="3.11",
        requirements=("six==1.17.0",),
        env_vars=env_vars,
        base_image=base_image,
    )
    return ResolvedEnvironment(spec, lock)


def test_static_binaries_are_told_from_dynamic_ones():
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).exists():
        pytest.skip("busybox-static is not installed (scripts/system-deps.sh installs it)")
    assert is_static_elf(busybox)
    assert not is_static_elf(sys.executable)
    assert not is_static_elf(__file__)  # not an ELF file at all


def test_a_static_uv_is_copied_into_the_image_else_installed_there():
    copied = dockerfile(resolved("base:1"), copy_uv=True, with_ca=False)
    assert "COPY uv /opt/mltrain/bin/uv" in copied
    assert "pip install" not in copied
    installed = dockerfile(resolved("base:1"), copy_uv=False, with_ca=True)
    assert "COPY uv" not in installed
    assert "pip install" in installed and "SSL_CERT_FILE=" in installed
    assert "ENV SSL_CERT_FILE" not in installed  # the CA bundle is used by the build, not set for jobs


def test_build_context_without_a_base_image_names_the_config_key(tmp_path):
    with pytest.raises(EnvironmentSpecError) as err:
        write_build_context(resolved(None), tmp_path / "ctx")
    assert "environment.docker.base_image" in str(err.value)


@pytest.mark.slow
def test_build_context_builds_elsewhere_into_a_working_image(tmp_path, python_image, docker_client):
    greeting = "hello from $HOSTNAME's container"
    env = resolved(python_image, MLTRAIN_GREETING=greeting, UV_MLTRAIN_TEST="build-only")
    folder = write_build_context(env, tmp_path / "ctx")
    dockerfile = (folder / "Dockerfile").read_text()
    assert dockerfile.splitlines()[2] == f"FROM {python_image}"
    # env vars are not baked into the image; PIP_*/UV_* ones are build arguments (names only in the file)
    assert "MLTRAIN_GREETING" not in dockerfile and "build-only" not in dockerfile
    assert "ARG UV_MLTRAIN_TEST" in dockerfile and "--build-arg UV_MLTRAIN_TEST" in dockerfile
    assert (folder / "requirements.lock").read_text() == env.lock
    assert {p.name for p in folder.iterdir()} <= {"Dockerfile", "ca-certificates.crt", "requirements.lock", "uv"}
    tag = image_tag(image_key(env))
    image, _logs = docker_client.images.build(
        path=str(folder), tag=tag, network_mode="host", rm=True, buildargs={"UV_MLTRAIN_TEST": "build-only"}
    )
    try:
        assert not any("MLTRAIN_GREETING" in e or "UV_MLTRAIN_TEST" in e for e in image.attrs["Config"]["Env"])
        out = docker_client.containers.run(
            tag,
            [PYTHON, "-c", "import os, six; print(six.__version__, os.environ['MLTRAIN_GREETING'])"],
            environment={"MLTRAIN_GREETING": greeting},  # as compute and deploy targets pass them
            network_mode="host",
            remove=True,
        )
        assert out.decode().strip() == f"1.17.0 {greeting}"
        assert image.labels["mltrain.env.hash"] == image_key(env)
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.mark.slow
def test_an_image_is_built_through_the_proxy_of_env_vars_which_its_history_does_not_keep(
    tmp_path, python_image, docker_client
):
    """The proxy of ``environment.env_vars`` reaches the image build (Docker's own proxy build argument)
    and is neither in the image's layers and history nor in what the environment is (its tag)."""
    from support import UNREACHED_INDEX, proxied_index

    from mltrain.environments.docker import DockerBuilder

    with proxied_index({"proxied_pkg": "0.1"}) as index:
        env = ResolvedEnvironment(
            EnvSpec(
                name="behind",
                build="docker",
                python="3.11",
                requirements=("proxied_pkg==0.1",),
                env_vars={"UV_INDEX_URL": UNREACHED_INDEX, "HTTP_PROXY": index.url("me", "s3cret")},
                base_image=python_image,
            ),
            "proxied_pkg==0.1\n",
        )
        log: list[str] = []
        built = DockerBuilder(api=docker_client.api).materialise(env, log.append, rebuild=True)
    try:
        assert index.fetched("/files/proxied_pkg-0.1-py3-none-any.whl") and set(index.fetched("")) == {"me"}
        unproxied = ResolvedEnvironment(replace(env.spec, env_vars={"UV_INDEX_URL": UNREACHED_INDEX}), env.lock)
        assert built.location == image_tag(image_key(unproxied))  # the same image without the proxy
        history = json.dumps(docker_client.api.history(built.location))
        assert "s3cret" not in history and str(index.port) not in history
        assert not [line for line in log if "s3cret" in line]
        out = docker_client.containers.run(
            built.location, [PYTHON, "-c", "import proxied_pkg; print(proxied_pkg.__version__)"], remove=True
        )
        assert out.decode().strip() == "0.1"
    finally:
        docker_client.images.remove(built.location, force=True)
