"""A team workspace: the same runs, metrics and registry on a real PostgreSQL server (started here on
127.0.0.1, stopped by PID), with several processes writing at once."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from support import start_mltrain, wait_all_ok, write_script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install mltrain[postgres])")
    folder = Path(tempfile.mkdtemp(prefix="mltrain-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "nobody", "nogroup")
        as_user = ["runuser", "-u", "nobody", "--"]
    data = folder / "data"
    init = subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mltrain"],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr[-500:]}")
    port = _free_port()
    log = open(folder / "postgres.log", "w")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(
        [*as_user, str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"postgresql+psycopg://mltrain@127.0.0.1:{port}/postgres"
    try:
        for _ in range(100):
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip("PostgreSQL did not start: " + (folder / "postgres.log").read_text()[-500:])
        yield url
    finally:
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), 15)  # the postmaster this fixture started
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_env(pg_url: str, tmp_path: Path) -> dict[str, str]:
    """A fresh database per test, shared artifact root."""
    import psycopg

    name = f"t{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return {"MLTRAIN_DB_URL": pg_url.rsplit("/", 1)[0] + f"/{name}", "MLTRAIN_ARTIFACT_ROOT": str(tmp_path / "art")}


def test_runs_and_metrics_from_parallel_drivers(mltrain, cli_json, project, pg_env):
    write_script(
        project / "src",
        "m.py",
        "from mltrain import Run\nr = Run.get_context()\n"
        "[r.log('v', i, step=i) for i in range(2000)]\nr.log_row('t', a=1)\n",
    )
    args = ("environment=system", "~register", "job.source_dir=src", "job.script=m.py", "experiment_name=team")
    wait_all_ok([start_mltrain(project, *args, env=pg_env) for _ in range(4)], timeout=300)
    runs = cli_json("runs", "list", env=pg_env)
    assert len(runs) == 4 and {r["status"] for r in runs} == {"Completed"}
    for run in runs:
        shown = cli_json("runs", "show", run["id"], env=pg_env)
        assert shown["metrics"]["v"] == 1999.0 and shown["metrics"]["t"] == {"a": [1]}
    assert not (project / ".mltrain" / "mltrain.db").exists()  # nothing went to the local SQLite file


def test_registry_versions_under_concurrency(pg_env, tmp_path):
    model = tmp_path / "m.joblib"
    joblib.dump({"weights": [1, 2, 3]}, model)  # a real joblib file: its content must match its name
    script = (
        "import sys\nfrom mltrain.registry.store import ModelRegistry\nfrom mltrain.workspace import Workspace\n"
        "ws = Workspace.open(sys.argv[1])\n"
        "print(' '.join(str(ModelRegistry.of(ws).register('team-model', sys.argv[2]).version) for _ in range(5)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "ws"), str(model)],
            env={**os.environ, **pg_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        versions += [int(v) for v in out.split()]
    assert sorted(versions) == list(range(1, 31))


def test_data_versions_and_run_links_on_postgres(pg_env, tmp_path, monkeypatch):
    from mltrain.data.create import create
    from mltrain.data.transfer import download
    from mltrain.workspace import Workspace

    for key, value in pg_env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "raw" / "sub").mkdir(parents=True)
    (tmp_path / "raw" / "sub" / "f.txt").write_text("on postgres")
    ws = Workspace.open(str(tmp_path / "ws"))
    try:
        first = create(ws, "team-data", tmp_path / "raw", tags={"team": "ml"})
        second = create(ws, "team-data", tmp_path / "raw")
        assert (first.version, second.version, second.digest) == (1, 2, first.digest)
        ws.data.set_alias("team-data", 1, "prod")
        ws.runs.create("20260101_000000_abcdef", "team")
        ws.data.link_run("20260101_000000_abcdef", "input", "train", version=first, mode="download")
        assert ws.data.get("team-data", alias="prod").aliases == ("prod",)
        assert [x.data_version for x in ws.data.links(run_id="20260101_000000_abcdef")] == [1]
        assert (download(ws, first, tmp_path / "out") / "sub" / "f.txt").read_text() == "on postgres"
    finally:
        ws.db.dispose()  # the server stops only when its clients are gone
