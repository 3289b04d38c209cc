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


def _wheel_with_data(folder: Path) -> Path:
    """A wheel that installs outside site-packages too: a script, a header, a data file (and an
    entry point, a module in ``.data/purelib``)."""
    import base64
    import zipfile

    files = {
        "demo/__init__.py": "def main():\n    print('entry point ran')\n",
        "demo-0.1.data/purelib/demo_extra.py": "EXTRA = 2\n",
        "demo-0.1.data/scripts/demo-tool": "#!python\nimport sys\nprint('tool ran in', sys.prefix)\n",
        "demo-0.1.data/data/share/demo/thing.txt": "shared data\n",
        "demo-0.1.data/headers/demo.h": "/* a header */\n",
        "demo-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo\nVersion: 0.1\n",
        "demo-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "demo-0.1.dist-info/entry_points.txt": "[console_scripts]\ndemo-ep = demo:main\n",
    }
    wheel = folder / "demo-0.1-py3-none-any.whl"
    folder.mkdir(parents=True)
    record = []
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            data = text.encode()
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        zf.writestr("demo-0.1.dist-info/RECORD", "\n".join([*record, "demo-0.1.dist-info/RECORD,,"]) + "\n")
    return wheel


def test_scripts_headers_and_data_outside_site_packages_are_shipped_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remade wheel installs what the original installed outside site-packages, where it belongs
    (script in bin/ running the venv's Python, data under the venv, the header under include/)."""
    import subprocess
    import sys
    import zipfile

    from mltrain.environments.cache import uv_bin

    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    original = _wheel_with_data(tmp_path / "dist")
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    node = {"name": "w", "build": "venv", "python": python, "pip": [f"demo @ {original.as_uri()}"]}
    env = resolve(EnvSpec.from_config(node), ws)
    (wheel,) = wheelhouse(env, PROBE, lambda line: None)
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "demo-0.1.data/scripts/demo-tool",
        "demo-0.1.data/data/share/demo/thing.txt",
        "demo-0.1.data/headers/demo.h",
        "demo_extra.py",
    } <= set(names), names
    assert not [n for n in names if n.startswith(("bin/", "share/", "include/"))]  # nothing misplaced
    assert not [n for n in names if "demo-ep" in n]  # the entry point's script is made by the installer
    assert zipfile.ZipFile(wheel).read("demo-0.1.data/scripts/demo-tool").startswith(b"#!python\n")

    venv = tmp_path / "venv"  # installed as a host installs the shipped wheels: offline, from them only
    subprocess.run([uv_bin(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    install = [uv_bin(), "pip", "install", "--quiet", "--offline", "--no-index", "--python", str(venv / "bin/python")]
    subprocess.run([*install, str(wheel)], check=True)
    tool = subprocess.run([str(venv / "bin" / "demo-tool")], capture_output=True, text=True, check=True)
    assert tool.stdout.strip() == f"tool ran in {venv}"
    assert subprocess.run([str(venv / "bin" / "demo-ep")], capture_output=True, text=True).stdout == "entry point ran\n"
    assert (venv / "share" / "demo" / "thing.txt").read_text() == "shared data\n"
    assert list(venv.glob("include/site/python*/demo/demo.h"))


def test_the_wheels_for_a_host_are_fetched_through_the_environments_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wheels this machine ships to a host without the index are fetched (when uv's cache lacks
    them) through the proxy of ``environment.env_vars``, as every build of the environment is."""
    from support import UNREACHED_INDEX, proxied_index

    from mltrain.environments.resolve import ResolvedEnvironment

    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))  # empty: the wheel has to be fetched
    with proxied_index({"proxied_pkg": "0.1"}) as index:
        env_vars = {"UV_INDEX_URL": UNREACHED_INDEX, "HTTP_PROXY": index.url("me", "pw")}
        spec = EnvSpec.from_config({"name": "w", "build": "venv", "pip": ["proxied-pkg==0.1"], "env_vars": env_vars})
        (wheel,) = wheelhouse(ResolvedEnvironment(spec, "proxied-pkg==0.1\n"), PROBE, lambda line: None)
    assert wheel.name == "proxied_pkg-0.1-py3-none-any.whl"
    assert index.fetched("/files/proxied_pkg-0.1-py3-none-any.whl") and set(index.fetched("")) == {"me"}
