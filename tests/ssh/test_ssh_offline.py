"""Hosts that cannot reach the package index: this machine ships the locked wheels through the
host's blob cache (only those it lacks) and the host builds the venv from them, offline."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from support import write_script

from mltrain.environments.cache import uv_bin

DEAD = "http://127.0.0.1:9"  # nothing listens there: every index request fails at once
# a host whose network does not reach the package index: its proxy and index point nowhere, and it
# has a uv cache of its own (empty, as on another machine)
CUT_OFF = {
    "HTTP_PROXY": DEAD,
    "HTTPS_PROXY": DEAD,
    "ALL_PROXY": DEAD,
    "http_proxy": DEAD,
    "https_proxy": DEAD,
    "UV_INDEX_URL": f"{DEAD}/simple",
    "UV_DEFAULT_INDEX": f"{DEAD}/simple",
    "PIP_INDEX_URL": f"{DEAD}/simple",
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_RETRIES": "0",  # fail at once: retries would only make the test slower
    "UV_HTTP_RETRIES": "0",
}
JOB = "import six\nprint('six on the host', six.__version__, six.__file__)\n"


def _cut_off_host(ssh_pool: Any, addr: str, name: str, with_uv: bool = False) -> tuple[Any, Path]:
    """A new SSH host cut off from the package index (``with_uv``: uv on its PATH), and a known_hosts
    file with its key."""
    name = f"{name}-{time.monotonic_ns()}"
    env = {**CUT_OFF, "UV_CACHE_DIR": str(ssh_pool.root / f"uv-{name}")}
    if with_uv:
        tools = ssh_pool.root / f"tools-{name}"
        tools.mkdir()
        (tools / "uv").symlink_to(uv_bin())
        env["PATH"] = f"{tools}:{os.environ['PATH']}"
    host = ssh_pool.make_host(addr, name, env=env)
    known = ssh_pool.root / f"known-{name}"
    known.write_text(host.known_hosts_line())
    return host, known


def _job(host: Any, known: Path, *extra: str) -> list[str]:
    entry = ",".join(f"{k}:{v}" for k, v in host.entry().items())
    return [
        "+compute=ssh",
        f"compute.hosts=[{{{entry}}}]",
        f"compute.known_hosts={known}",
        "environment=system",
        "environment.name=offline-six",
        "environment.build=venv",
        "environment.pip=['six==1.17.0']",
        "~register",
        "job.source_dir=src",
        "job.script=job.py",
        *extra,
    ]


def test_a_host_cut_off_from_the_index_builds_from_wheels_this_machine_ships(mltrain, project, ssh_pool):
    write_script(project / "src", "job.py", JOB)
    host, known = _cut_off_host(ssh_pool, "127.0.0.14", "cut-off")

    first = mltrain(*_job(host, known))  # found out by the host's build
    assert first.returncode == 0, first.output
    text = first.stdout + first.stderr
    label = f"root@{host.addr}:{host.port}"
    assert f"host {label} cannot reach the package index: shipping 1 wheels" in text, first.output
    assert "from this machine (0 of 1 already there)" in text
    assert f"six on the host 1.17.0 {host.workdir}/venvs/" in first.stdout  # installed in the host's venv
    assert len(list((host.workdir / "blobs").iterdir())) >= 2  # the wheel came through the blob cache

    # built again, with compute.offline: the index is not tried, and the wheel is on the host already
    again = mltrain(*_job(host, known, "compute.offline=true", "environment.rebuild=true"))
    assert again.returncode == 0, again.output
    text = again.stdout + again.stderr
    assert f"host {label} is offline (compute.offline): shipping 0 wheels (0.0 MB) from this machine" in text
    assert "(1 of 1 already there)" in text and "cannot reach the package index" not in text
    assert "six on the host 1.17.0" in again.stdout

    # a later command remembers (on the host) that its index was unreachable: offline at once, and says so
    later = mltrain(*_job(host, known, "environment.rebuild=true"))
    assert later.returncode == 0, later.output
    text = later.stdout + later.stderr
    assert f"host {label} found no package index 0 min ago (" in text, later.output
    assert "building from wheels of this machine without trying it" in text
    assert "the build on" not in text and "error sending request" not in text  # the index was not tried
    assert "six on the host 1.17.0" in later.stdout


def test_an_unreachable_index_is_noted_on_the_host_with_its_age(tmp_path: Path) -> None:
    import json

    from mltrain.remote.ssh_index import NO_INDEX_NOTE, no_index_note, note_index

    work = str(tmp_path)
    assert no_index_note(work) is None
    note_index(work, "uv: first line\nerror: Failed to fetch: `http://127.0.0.1:9/simple/six/`")
    note = no_index_note(work)
    assert note is not None and note["said"] == "error: Failed to fetch: `http://127.0.0.1:9/simple/six/`"
    assert 0 <= note["age_s"] < 60
    (tmp_path / NO_INDEX_NOTE).write_text(json.dumps({"at": time.time() - 3601, "said": "old"}))
    assert 3600 < no_index_note(work)["age_s"] < 3660  # how long it counts is the driver's setting
    (tmp_path / NO_INDEX_NOTE).write_text(json.dumps({"at": time.time() + 600, "said": "ahead"}))
    assert no_index_note(work) is None  # from a clock set back since: not taken
    note_index(work, "again")
    note_index(work, None)  # a build reached the index: forgotten
    assert no_index_note(work) is None and not (tmp_path / NO_INDEX_NOTE).exists()


def test_how_long_a_host_remembers_an_unreachable_index_is_a_setting(mltrain, project, ssh_pool):
    """``compute.offline_memory_s``: a host's note that its index was unreachable, younger than that, sends
    the build to shipped wheels without trying the index; with 0 the build asks the index again."""
    import json

    from mltrain.remote.ssh_index import NO_INDEX_NOTE

    write_script(project / "src", "job.py", JOB)
    host, known = _cut_off_host(ssh_pool, "127.0.0.14", "memory")
    label = f"root@{host.addr}:{host.port}"
    host.workdir.mkdir(parents=True)
    (host.workdir / NO_INDEX_NOTE).write_text(json.dumps({"at": time.time() - 7200, "said": "two hours ago"}))

    kept = mltrain(*_job(host, known, "compute.offline_memory_s=10800"))  # 3 h: a 2 h old note counts
    assert kept.returncode == 0, kept.output
    text = kept.stdout + kept.stderr
    assert f"host {label} found no package index 120 min ago (two hours ago)" in text, kept.output
    assert "tried again 10800 s after that (compute.offline_memory_s)" in text
    assert "the build on" not in text  # the index was not tried
    assert "six on the host 1.17.0" in kept.stdout

    asked = mltrain(*_job(host, known, "compute.offline_memory_s=0", "environment.rebuild=true"))
    assert asked.returncode == 0, asked.output
    text = asked.stdout + asked.stderr
    assert f"the build on {label} found no package index (" in text, asked.output  # asked again, found none
    assert "min ago" not in text
    assert "six on the host 1.17.0" in asked.stdout


def test_compute_check_asks_with_the_environments_index_variables(cli, project, ssh_pool):
    """An index named only in ``environment.env_vars`` (as a build of that environment gets it on the
    host) is the one ``mltrain compute check`` asks about."""
    import http.server
    import json
    import threading

    index = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=index.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{index.server_address[1]}/simple/"
        host = ssh_pool.make_host("127.0.0.15", f"check-env-{time.monotonic_ns()}", env={"UV_INDEX_URL": url})
        known = ssh_pool.root / f"known-{host.addr}-{host.port}"
        known.write_text(host.known_hosts_line())
        entry = "{" + ",".join(f"{k}:{v}" for k, v in host.entry().items()) + "}"
        overrides = ["+compute=ssh", f"compute.hosts=[{entry}]", f"compute.known_hosts={known}"]
        label = f"root@{host.addr}:{host.port}"

        plain = {r["host"]: r for r in json.loads(cli("compute", "check", "--json", *overrides).stdout)}
        assert plain[label]["index"] == {"url": url, "reachable": True}  # the host's own index

        dead = [f"+environment.env_vars.UV_INDEX_URL='{DEAD}/simple'", "+environment.env_vars.OTHER=not-for-builds"]
        proc = cli("compute", "check", *overrides, *dead)
        assert proc.returncode == 0, proc.output
        line = next(x for x in proc.stdout.splitlines() if x.startswith(label))
        assert line.rstrip().endswith("UNREACHABLE"), proc.stdout
        assert f"{label}: cannot reach the package index ({DEAD}/simple): " in proc.stdout
    finally:
        index.shutdown()
        index.server_close()


def test_a_host_with_uv_that_finds_no_index_installs_the_shipped_wheels_with_uv(mltrain, project, ssh_pool):
    write_script(project / "src", "job.py", JOB)
    host, known = _cut_off_host(ssh_pool, "127.0.0.15", "cut-off-uv", with_uv=True)
    proc = mltrain(*_job(host, known))
    assert proc.returncode == 0, proc.output
    text = proc.stdout + proc.stderr
    assert "found no package index (" in text and "shipping 1 wheels" in text, proc.output
    assert f"six on the host 1.17.0 {host.workdir}/venvs/" in proc.stdout
    assert not (host.workdir / "tools").exists()  # the host's own uv built it: none was installed


def test_a_wheel_this_machine_cannot_provide_is_named_with_the_fix(mltrain, project, ssh_pool, tmp_path):
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace, WorkspaceSettings

    write_script(project / "src", "job.py", JOB)
    host, known = _cut_off_host(ssh_pool, "127.0.0.14", "no-wheel")
    pins = ["six==1.16.0", "tomli==2.0.1"]
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    resolve(EnvSpec.from_config({"name": "offline-six", "build": "venv", "pip": pins}), ws)  # locked, with the index
    # then this machine is offline too, with empty caches: it has no wheel of the locked packages
    driver = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "uv"), "MLTRAIN_CACHE_DIR": str(tmp_path / "envs")}
    quoted = ",".join(f"'{pin}'" for pin in pins)
    proc = mltrain(*_job(host, known, "compute.offline=true", f"environment.pip=[{quoted}]"), env=driver)
    assert proc.returncode != 0
    assert "this machine cannot provide wheels of six==1.16.0, tomli==2.0.1 for the host" in proc.stderr, proc.output
    assert "run once where this machine reaches the package index" in proc.stderr  # the fix
    assert not list((host.workdir / "venvs").glob("*/bin/python"))  # nothing half-built on the host


def test_compute_check_shows_whether_each_host_reaches_its_package_index(cli, project, ssh_pool, tmp_path):
    """A column per host, from one bounded request made by the host (through its own proxies); a host
    that reaches its index again forgets that a build found it unreachable."""
    import http.server
    import json
    import threading

    from mltrain.remote.ssh_index import NO_INDEX_NOTE

    index = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=index.serve_forever, daemon=True).start()
    try:
        cut, known = _cut_off_host(ssh_pool, "127.0.0.14", "check-cut")
        url = f"http://127.0.0.1:{index.server_address[1]}/simple/"
        near = ssh_pool.make_host("127.0.0.15", f"check-near-{time.monotonic_ns()}", env={"UV_INDEX_URL": url})
        known.write_text(cut.known_hosts_line() + near.known_hosts_line())
        near.workdir.mkdir(parents=True)
        (near.workdir / NO_INDEX_NOTE).write_text(json.dumps({"at": time.time(), "said": "from before"}))
        entries = ",".join("{" + ",".join(f"{k}:{v}" for k, v in h.entry().items()) + "}" for h in (cut, near))
        overrides = ["+compute=ssh", f"compute.hosts=[{entries}]", f"compute.known_hosts={known}"]
        proc = cli("compute", "check", *overrides)
        assert proc.returncode == 0, proc.output  # both hosts can run jobs
        lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("root@")}
        assert lines[f"root@{cut.addr}:{cut.port}"].rstrip().endswith("UNREACHABLE"), proc.stdout
        assert lines[f"root@{near.addr}:{near.port}"].rstrip().endswith("reachable"), proc.stdout
        said = f"root@{cut.addr}:{cut.port}: cannot reach the package index ({DEAD}/simple through the proxy {DEAD}): "
        assert said in proc.stdout
        assert "build their venvs from wheels this machine ships" in proc.stdout
        rows = {r["host"]: r for r in json.loads(cli("compute", "check", "--json", *overrides).stdout)}
        assert rows[f"root@{near.addr}:{near.port}"]["index"] == {"url": url, "reachable": True}
        assert not (near.workdir / NO_INDEX_NOTE).exists()
    finally:
        index.shutdown()
        index.server_close()


def _simple_index(pages: dict[str, bytes]) -> Any:
    """A PEP 503 index on 127.0.0.1 serving ``pages`` by path (anything else: 404)."""
    import http.server
    import threading

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_with_no_index_named_the_hosts_own_installer_is_asked_with_its_own_configuration(tmp_path, monkeypatch):
    """No index variable in the host's environment: the host's pip (or uv) looks a package up with the
    index its own configuration names, so the answer is the one a build would get (and mltrain names no
    index of its own)."""
    import subprocess
    import sys

    from mltrain.remote.ssh_index import ask_installer

    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    server = _simple_index({"/simple/pip/": b'<a href="pip-24.0-py3-none-any.whl">pip-24.0-py3-none-any.whl</a>'})
    try:
        live = f"http://127.0.0.1:{server.server_address[1]}/simple"
        pip_conf = tmp_path / "pip.conf"
        pip_conf.write_text(f"[global]\nindex-url = {live}\nno-index = false\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf))
        with_pip = sys.executable
        if subprocess.run([with_pip, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            with_pip = str(Path(sys.base_prefix) / "bin" / "python3")  # a venv made by uv has no pip
        what, reached, said = ask_installer(None, python=with_pip)
        assert (what, reached, said) == ("the index pip is configured with", True, None)
        pip_conf.write_text(f"[global]\nindex-url = {DEAD}/simple\n")
        what, reached, said = ask_installer(None, timeout=2, python=with_pip)
        assert reached is False and said, said
        uv = str(uv_bin())
        uv_conf = tmp_path / "uv.toml"
        uv_conf.write_text(f'index-url = "{DEAD}/simple"\n')
        monkeypatch.setenv("UV_CONFIG_FILE", str(uv_conf))
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
        what, reached, said = ask_installer(uv, timeout=2)
        assert what == "the index uv is configured with" and reached is False and said, said
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_named_only_in_env_vars_is_what_a_host_builds_and_checks_its_index_through(
    mltrain, cli, cli_json, project, ssh_pool, tmp_path
):
    """A host whose own proxies and index point nowhere: the proxy of ``environment.env_vars`` (read
    from the environment, with a password) is the way to the index for the lock, the host's build and
    ``mltrain compute check``; its password is shown nowhere."""
    import json

    from support import UNREACHED_INDEX, proxied_index

    write_script(project / "src", "job.py", "import proxied_pkg\nprint('on the host', proxied_pkg.__file__)\n")
    host, known = _cut_off_host(ssh_pool, "127.0.0.15", "behind-proxy", with_uv=True)
    label = f"root@{host.addr}:{host.port}"
    proxy = ["+environment.env_vars.HTTP_PROXY=${oc.env:TEST_PROXY}"]
    index_vars = [f"+environment.env_vars.UV_INDEX_URL={UNREACHED_INDEX}", "environment.pip=['proxied_pkg==0.1']"]
    driver = {"UV_CACHE_DIR": str(tmp_path / "uv")}  # empty: the package can only come through the proxy
    check = ["compute", "check", "+compute=ssh", *_job(host, known)[1:3]]
    with proxied_index({"proxied_pkg": "0.1"}) as index:
        driver["TEST_PROXY"] = index.url("me", "s3cret")
        run = mltrain(*_job(host, known, *index_vars, *proxy), env=driver)
        assert run.returncode == 0, run.output
        assert f"on the host {host.workdir}/venvs/" in run.stdout  # built on the host from the index
        assert "shipping" not in run.stdout + run.stderr and "no package index" not in run.stdout + run.stderr
        assert index.fetched("/files/proxied_pkg-0.1-py3-none-any.whl") and set(index.fetched("")) == {"me"}

        (row,) = cli_json(*check, *proxy, env=driver)
        assert row["index"] == {"url": UNREACHED_INDEX, "proxy": index.url("me", "<redacted>"), "reachable": True}
    assert "s3cret" not in run.stdout + run.stderr + json.dumps(cli_json("runs", "list", "-n", "0"))

    # without it, the host's own proxy (where nothing listens); then a proxy of env_vars that does not answer
    (row,) = cli_json(*check)
    assert row["index"]["reachable"] is False and row["index"]["proxy"] == DEAD
    driver["TEST_PROXY"] = "http://me:s3cret@127.0.0.1:9"
    dead = cli(*check, *proxy, env=driver)
    assert dead.returncode == 0, dead.output
    where = f"{UNREACHED_INDEX} through the proxy http://me:<redacted>@127.0.0.1:9"
    assert f"{label}: cannot reach the package index ({where}): " in dead.stdout
    assert "s3cret" not in dead.stdout + dead.stderr


def test_a_host_without_uv_installs_it_through_the_proxy_of_env_vars(mltrain, project, ssh_pool, tmp_path):
    """The host's pip installs uv for the build through the environment's proxy too (pip prefers the
    host's lower-case ``http_proxy``: the environment's ``HTTP_PROXY`` is set in that spelling as well)."""
    from support import UNREACHED_INDEX, proxied_index

    write_script(project / "src", "job.py", "import proxied_pkg\nprint('on the host', proxied_pkg.__file__)\n")
    host, known = _cut_off_host(ssh_pool, "127.0.0.14", "no-uv-behind-proxy")
    uv = {"uv-0.0.2.data/scripts/uv": f'#!/bin/sh\nexec {uv_bin()} "$@"\n'}  # this machine's uv, as a wheel
    index_vars = [f"+environment.env_vars.UV_INDEX_URL={UNREACHED_INDEX}", "environment.pip=['proxied_pkg==0.1']"]
    index_vars.append("+environment.env_vars.PIP_NO_CACHE_DIR=1")  # (pip's cache is this machine's)
    with proxied_index({"proxied_pkg": "0.1", "uv": "0.0.2"}, {"uv": uv}) as index:
        driver = {"UV_CACHE_DIR": str(tmp_path / "uv"), "TEST_PROXY": index.url("me", "s3cret")}
        proxy = "+environment.env_vars.HTTP_PROXY=${oc.env:TEST_PROXY}"
        run = mltrain(*_job(host, known, *index_vars, proxy), env=driver)
    assert run.returncode == 0, run.output
    assert f"installing uv into {host.workdir}/tools/uv" in run.stdout + run.stderr, run.output
    assert f"on the host {host.workdir}/venvs/" in run.stdout and "shipping" not in run.stdout + run.stderr
    assert index.fetched("/simple/uv/") and set(index.fetched("")) == {"me"}
