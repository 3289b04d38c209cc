"""``mltrain envs list | show | build | prune``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from envtools import env_json, open_workspace, venv_folders, write_conf

from mltrain.environments.prune import parse_duration
from mltrain.errors import ConfigError

pytestmark = pytest.mark.slow

TINY = {"name": "tiny", "version": "2", "build": "venv", "pip": ["six==1.17.0"]}


def test_build_list_show(project: Path, private_cache: Path, cli, cli_json) -> None:
    write_conf(project, "environment", "tiny", TINY)
    built = env_json(cli("envs", "build", "tiny", "--json"))
    assert built["cached"] is False and built["name"] == "tiny" and built["builder"] == "venv"
    assert Path(built["location"], "bin", "python").exists()
    assert venv_folders(private_cache) == [Path(built["location"]).name]

    again = cli("envs", "build", "tiny")
    assert again.returncode == 0, again.output
    assert "cached" in again.stdout and "[build]" not in again.stdout

    listed = cli_json("envs", "list")
    assert [(e["name"], e["builder"], e["hash"], e["python"]) for e in listed] == [
        ("tiny", "venv", built["hash"], built["python"])
    ]
    assert listed[0]["size_bytes"] > 0 and listed[0]["exists"] is True
    table = cli("envs", "list")
    for column in ("NAME", "BUILDER", "HASH", "PYTHON", "SIZE", "LAST USED", "LOCATION"):
        assert column in table.stdout
    assert built["hash"][:12] in table.stdout and built["location"] in table.stdout

    for ident in ("tiny", built["hash"][:8]):
        shown = cli("envs", "show", ident)
        assert shown.returncode == 0, shown.output
        assert built["hash"] in shown.stdout
        assert "six==1.17.0" in shown.stdout.split("Lock:")[1]  # the lock it was built from
        assert "version 2" in shown.stdout
    data = cli_json("envs", "show", "tiny")
    assert data["lock"].strip() == "six==1.17.0" and data["spec"]["requirements"] == ["six==1.17.0"]

    missing = cli("envs", "show", "nope")
    assert missing.returncode == 2 and "no environment 'nope'" in missing.stderr and "tiny" in missing.stderr


def test_build_with_overrides_and_rebuild(project: Path, private_cache: Path, cli, tmp_path: Path) -> None:
    write_conf(project, "environment", "loose", {"name": "loose", "build": "venv", "pip": ["six"]})
    old = tmp_path / "old.txt"
    old.write_text("six==1.16.0\n")
    first = env_json(cli("envs", "build", "loose", "--json", env={"UV_CONSTRAINT": str(old)}))
    shown = json.loads(cli("envs", "show", first["hash"], "--json").stdout)
    assert shown["lock"].strip() == "six==1.16.0"

    same = env_json(cli("envs", "build", "loose", "--json"))
    assert same["hash"] == first["hash"] and same["cached"] is True  # the lock is kept

    relocked = env_json(cli("envs", "build", "loose", "--rebuild", "--json"))
    assert relocked["hash"] != first["hash"] and relocked["cached"] is False
    shown = json.loads(cli("envs", "show", relocked["hash"], "--json").stdout)
    assert shown["lock"].strip() != "six==1.16.0"

    rebuilt = env_json(cli("envs", "build", "loose", "--rebuild", "--json"))
    assert rebuilt["hash"] == relocked["hash"] and rebuilt["cached"] is False  # built again on request

    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"
    for override in (f"environment.python={other}", f"python={other}"):
        proc = cli("envs", "build", "loose", override, "--json")
        if proc.returncode == 2 and f"Python {other} is not available" in proc.stderr:
            pytest.skip(f"Python {other} is not installed on this machine")
        assert env_json(proc)["python"] == other


def test_build_errors(project: Path, private_cache: Path, cli, cli_json) -> None:
    unknown = cli("envs", "build", "nosuch")
    assert unknown.returncode == 2
    assert "no environment 'nosuch'" in unknown.stderr and "sklearn" in unknown.stderr and "system" in unknown.stderr
    bad = cli("envs", "build", "sklearn", "environment.pip=[nonexistent-pkg-xyz]")
    assert bad.returncode == 2 and "nonexistent-pkg-xyz is not on the package index" in bad.stderr
    assert cli_json("envs", "list") == []
    assert venv_folders(private_cache) == []


def test_dockerfile(project: Path, cli) -> None:
    try:
        from mltrain.environments.docker import write_build_context  # noqa: F401
    except ImportError:
        pytest.skip("mltrain.environments.docker.write_build_context is not in this tree")
    write_conf(project, "environment", "img", {**TINY, "name": "img", "docker": {"base_image": "python:3.11-slim"}})
    dest = project / "ctx"
    proc = cli("envs", "build", "img", "--dockerfile", str(dest))
    assert proc.returncode == 0, proc.output
    dockerfile = (dest / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "six==1.17.0" in "".join(p.read_text(errors="replace") for p in dest.rglob("*") if p.is_file())


def _age(project: Path, env_hash: str, record_age_s: float, machine_age_s: float) -> None:
    """Pretend the environment was last used that long ago, in this workspace and on this machine."""
    from sqlalchemy import update

    from mltrain.environments.venv import READY_MARKER, venv_path
    from mltrain.workspace import tables as t

    ws = open_workspace(project)
    with ws.db.write() as conn:
        conn.execute(
            update(t.environments)
            .where(t.environments.c.hash == env_hash)
            .values(last_used_at=time.time() - record_age_s)
        )
    then = time.time() - machine_age_s
    os.utime(venv_path(env_hash) / READY_MARKER, (then, then))


def test_prune(project: Path, private_cache: Path, cli, cli_json) -> None:
    write_conf(project, "environment", "tiny", TINY)
    write_conf(project, "environment", "other", {"name": "other", "build": "venv", "pip": ["tomli==2.2.1"]})
    tiny = env_json(cli("envs", "build", "tiny", "--json"))
    other = env_json(cli("envs", "build", "other", "--json"))

    assert cli_json("envs", "prune", "--older-than", "1h")["environments"] == []  # both just used

    _age(project, tiny["hash"], record_age_s=3 * 3600, machine_age_s=3 * 3600)
    _age(project, other["hash"], record_age_s=3 * 3600, machine_age_s=60)  # used since by another workspace

    dry = cli("envs", "prune", "--older-than", "2h", "--dry-run")
    assert dry.returncode == 0, dry.output
    assert "would remove" in dry.stdout and tiny["hash"][:12] in dry.stdout
    assert Path(tiny["location"]).exists()  # a dry run deletes nothing
    assert len(cli_json("envs", "list")) == 2

    done = cli_json("envs", "prune", "--older-than", "2h")
    actions = {e["hash"]: e["remove"] for e in done["environments"]}
    assert actions == {tiny["hash"]: True, other["hash"]: False}
    assert done["freed_bytes"] > 0
    assert not Path(tiny["location"]).exists() and Path(other["location"]).exists()
    assert [e["name"] for e in cli_json("envs", "list")] == ["other"]
    assert venv_folders(private_cache) == [Path(other["location"]).name]

    # a venv that this workspace never recorded (another workspace built it) goes by its last use on the machine
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    write_conf(elsewhere, "environment", "tiny", TINY)
    env_json(cli("--workspace", str(elsewhere / ".mltrain"), "envs", "build", "tiny", "--json", cwd=elsewhere))
    assert len(venv_folders(private_cache)) == 2
    swept = cli_json("envs", "prune", "--older-than", "0s")
    assert {e["hash"] for e in swept["environments"] if e["remove"]} == {tiny["hash"], other["hash"]}
    assert venv_folders(private_cache) == []
    assert cli_json("envs", "list") == []

    bad = cli("envs", "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "30d" in bad.stderr


def test_parse_duration() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("0s") == 0
    assert parse_duration("2w") == 14 * 86400
    for bad in ("", "10", "1x", "d1"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
