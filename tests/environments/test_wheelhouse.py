"""The wheels shipped to hosts without the package index: remade from uv's cache for the host's
platform, the same bytes each time (so a host's blob cache receives each only once), refused by name
when they do not fit the host."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from mltrain.environments.resolve import resolve
from mltrain.environments.spec import EnvSpec
from mltrain.environments.wheelhouse import fits, uv_platform, wheelhouse
from mltrain.errors import EnvironmentSpecError
from mltrain.workspace import Workspace, WorkspaceSettings

MACHINE = os.uname().machine
PROBE = {"machine": MACHINE, "libc": ["glibc", "2.36"]}


def test_locked_wheels_are_remade_the_same_bytes_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    env = resolve(EnvSpec.from_config({"name": "w", "build": "venv", "pip": ["six==1.17.0"]}), ws)
    log: list[str] = []
    (wheel,) = wheelhouse(env, PROBE, log.append)
    assert wheel.name == "six-1.17.0-py2.py3-none-any.whl"
    assert any("collecting the 1 locked wheels of environment w" in line for line in log)
    first = hashlib.sha256(wheel.read_bytes()).hexdigest()
    shutil.rmtree(wheel.parent)  # made again: the same bytes, so a host's blob cache has it already
    (again,) = wheelhouse(env, PROBE, log.append)
    assert hashlib.sha256(again.read_bytes()).hexdigest() == first


def test_the_host_platform_decides_which_wheels_fit() -> None:
    assert uv_platform({"machine": "x86_64", "libc": ["glibc", "2.36"]}) == "x86_64-manylinux_2_36"
    assert uv_platform({"machine": "aarch64", "libc": ["glibc", "2.5"]}) == "aarch64-manylinux_2_17"
    assert uv_platform({"machine": "x86_64", "libc": ["", ""]}) == "x86_64-unknown-linux-musl"
    with pytest.raises(EnvironmentSpecError) as err:
        uv_platform({"machine": "ppc64le", "libc": ["glibc", "2.36"]})
    assert "runs on ppc64le" in err.value.message and "x86_64 and aarch64" in err.value.message
    native = "tomli-2.2.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert fits(native, "3.11", "x86_64")
    assert not fits(native, "3.12", "x86_64") and not fits(native, "3.11", "aarch64")
    assert fits("six-1.17.0-py2.py3-none-any.whl", "3.13", "aarch64")
    assert fits("cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "3.12", "x86_64")
    assert not fits("cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "3.8", "x86_64")
