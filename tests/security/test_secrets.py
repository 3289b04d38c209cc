"""A secret given to a job as ``${oc.env:NAME}`` in ``job.env_vars`` or ``environment.env_vars`` reaches
the script, and appears nowhere in the workspace: not in the database file, the run folders, the
artifact blobs, ``runs show``, ``--cfg job``, the environment's record or the dashboard's API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from support import request, write_script
from ui.helpers import serving

from mltrain.workspace import Workspace

SECRET = "s3cr3t-value-7f3a"  # MY_SECRET, the script's SECRET
ENV_VALUE = "s3cr3t-9b2c"  # MY_ENV_SECRET; the script's ENV_SECRET is "env-" + it
# the script checks what it got against digests (so its own outputs hold no secret) and fails otherwise
CHECK = """
import hashlib, os, sys
def digest(name):
    return hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()
want = dict(zip(sys.argv[1::2], sys.argv[2::2]))
ok = digest("SECRET") == want["--job"] and digest("ENV_SECRET") == want["--env"]
print("secrets ok" if ok else "secrets wrong", flush=True)
sys.exit(0 if ok else 5)
"""
OVERRIDES = [
    "environment=system",
    "~register",
    "job.source_dir=src",
    "job.script=check.py",
    "job.arguments=null",
    f"+job.arguments.job={hashlib.sha256(SECRET.encode()).hexdigest()}",
    f"+job.arguments.env={hashlib.sha256(('env-' + ENV_VALUE).encode()).hexdigest()}",
    "+job.env_vars.SECRET='${oc.env:MY_SECRET}'",
    "+environment.env_vars.ENV_SECRET=env-${oc.env:MY_ENV_SECRET}",
]
ENV = {"MY_SECRET": SECRET, "MY_ENV_SECRET": ENV_VALUE}


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_secrets_from_the_environment_stay_out_of_records(mltrain, cli, project: Path):
    write_script(project / "src", "check.py", CHECK)
    single = mltrain(*OVERRIDES, env=ENV)
    assert single.returncode == 0, single.output
    assert "secrets ok" in single.stdout
    sweep = mltrain("-m", *OVERRIDES, "+job.arguments.n=1,2", env=ENV)
    assert sweep.returncode == 0, sweep.output
    printed = mltrain(*OVERRIDES, "--cfg", "job", env=ENV)
    assert printed.returncode == 0 and "${oc.env:MY_SECRET}" in printed.stdout, printed.output

    ws_root = project / ".mltrain"
    for needle in (SECRET, ENV_VALUE):
        assert _files_holding(ws_root, needle.encode()) == []  # database (and its WAL), run folders, blobs
        for proc in (single, sweep, printed):
            assert needle not in proc.stdout + proc.stderr
    ws = Workspace.open(str(ws_root))
    runs = ws.runs.list()
    ws.db.dispose()
    assert len(runs) == 4 and all(r["status"] == "Completed" for r in runs)
    for run in runs:
        shown = cli("runs", "show", run["id"], "--json")
        assert shown.returncode == 0 and SECRET not in shown.stdout and ENV_VALUE not in shown.stdout
        config = json.loads(shown.stdout)["config"]
        assert config["job"]["env_vars"] == {"SECRET": "${oc.env:MY_SECRET}"}  # the reference, not the value
        assert config["environment"]["env_vars"] == {"ENV_SECRET": "env-${oc.env:MY_ENV_SECRET}"}
    envs = cli("envs", "show", runs[0]["env_hash"], "--json")
    assert envs.returncode == 0 and "${oc.env:MY_ENV_SECRET}" in envs.stdout and ENV_VALUE not in envs.stdout
    with serving(ws_root) as ui:
        for run in runs:
            body = request(ui.url, "GET", f"/api/runs/{run['id']}").body
            assert SECRET.encode() not in body and ENV_VALUE.encode() not in body and b"oc.env" in body


def test_a_variable_missing_at_run_time_is_a_config_error_before_anything_is_recorded(mltrain, project: Path):
    write_script(project / "src", "check.py", CHECK)
    missing = mltrain(*OVERRIDES, env={"MY_ENV_SECRET": ENV_VALUE})
    assert missing.returncode == 2, missing.output
    assert "job.env_vars.SECRET reads the environment variable MY_SECRET, which is not set" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (project / ".mltrain").exists()  # nothing recorded


def test_reading_references(monkeypatch):
    import pytest

    from mltrain.environments.variables import read_references
    from mltrain.errors import ConfigError

    monkeypatch.setenv("MLTRAIN_TEST_A", "va")
    monkeypatch.delenv("MLTRAIN_TEST_NOPE", raising=False)
    got = read_references(
        {
            "A": "${oc.env:MLTRAIN_TEST_A}",
            "B": "p-${oc.env:MLTRAIN_TEST_NOPE,dflt}",  # a default
            "C": "${oc.env:MLTRAIN_TEST_NOPE,null}",  # null: the variable is left out
            "D": "\\${oc.env:MLTRAIN_TEST_NOPE}",  # escaped: the text itself
            "E": 1,
        },
        "job.env_vars",
    )
    assert got == {"A": "va", "B": "p-dflt", "D": "${oc.env:MLTRAIN_TEST_NOPE}", "E": "1"}
    with pytest.raises(ConfigError, match=r"job.env_vars.X: .* cannot be read at run time"):
        read_references({"X": "${oc.env:MLTRAIN_TEST_A}-${job.name}"}, "job.env_vars")
