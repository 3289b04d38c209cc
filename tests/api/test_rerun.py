"""``mltrain runs rerun ID [OVERRIDES]``: a run again from its record alone (snapshot, environment lock,
resolved config and overrides, compute), bit-identical for a deterministic script; refused, naming what
is missing, when the record lacks something."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import write_script

import mltrain

DETERMINISTIC = """
import random, sys
from mltrain import Run
run = Run.get_context()
seed = int(sys.argv[sys.argv.index("--seed") + 1])
rng = random.Random(seed)
for step in range(50):
    run.log("noise", rng.random() / 3, step=step)
run.log("final", rng.gauss(0, 1))
"""
BASE = ("environment=system", "~register", "job.source_dir=src", "job.script=det.py", "job.arguments=null",
        "job.arguments={seed:7}")  # fmt: skip


def series(cli_json, run_id: str) -> list[tuple[str, int | None, float]]:
    return [(r["name"], r["step"], r["value"]) for r in cli_json("runs", "metrics", run_id)]


def test_rerun_is_bit_identical_and_recorded_as_a_rerun(mltrain, cli, cli_json, project):
    write_script(project / "src", "det.py", DETERMINISTIC)
    first = mltrain(*BASE)
    assert first.returncode == 0, first.output
    original = cli_json("runs", "list")[0]["id"]
    write_script(
        project / "src", "det.py", "raise SystemExit('the source changed since')\n"
    )  # not used: the snapshot is
    again = cli("runs", "rerun", original)
    assert again.returncode == 0, again.output
    rerun_id = cli_json("runs", "list")[0]["id"]
    old, new = cli_json("runs", "show", original), cli_json("runs", "show", rerun_id)
    assert new["tags"]["mltrain.rerun_of"] == original
    assert (new["snapshot_id"], new["env_hash"], new["compute"]) == (
        old["snapshot_id"],
        old["env_hash"],
        old["compute"],
    )
    assert new["overrides"] == old["overrides"] and new["arguments"] == old["arguments"]
    assert series(cli_json, rerun_id) == series(cli_json, original)  # every value, bit for bit
    assert len(series(cli_json, original)) == 51
    # with an override on top: the same run otherwise
    changed = cli("runs", "rerun", original, "job.arguments.seed=8")
    assert changed.returncode == 0, changed.output
    other = cli_json("runs", "list")[0]["id"]
    shown = cli_json("runs", "show", other)
    assert shown["arguments"] == ["--seed", "8"] and shown["snapshot_id"] == old["snapshot_id"]
    assert series(cli_json, other) != series(cli_json, original)
    # from Python, detached
    rerun = mltrain_api_rerun(original)
    assert rerun.wait() == "Completed"
    assert [(p.step, p.value) for p in rerun.metrics("noise")] == [
        (s, v) for n, s, v in series(cli_json, original) if n == "noise"
    ]


def mltrain_api_rerun(run_id: str):
    return mltrain.Workspace().run(run_id).rerun()


def test_rerun_keeps_the_recorded_environment_lock(mltrain, cli, cli_json, project, monkeypatch):
    """The lock the run ran with is used even when the spec's stored lock changed since."""
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec
    from mltrain.runs.rerun import prepare_rerun
    from mltrain.workspace import Workspace

    write_script(project / "src", "det.py", DETERMINISTIC)
    assert mltrain(*BASE).returncode == 0
    ws = Workspace.open()
    run = ws.runs.list()[0]
    rerun = prepare_rerun(ws, run["id"], [], lambda o: {})
    assert isinstance(rerun.env, ResolvedEnvironment) and rerun.env.hash == run["env_hash"]
    assert rerun.env.spec == EnvSpec.from_config(run["config"]["environment"])
    assert Path(rerun.config["job"]["source_dir"]).parent == ws.root / "reruns"


def test_rerun_is_refused_when_a_snapshot_blob_was_pruned(mltrain, cli, cli_json, project):
    write_script(project / "src", "det.py", DETERMINISTIC)
    assert mltrain(*BASE).returncode == 0
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    snapshot = json.loads(cli("snapshots", "show", run["snapshot_id"], "--json").stdout)
    sha = next(f["sha256"] for f in snapshot["files"] if f["path"] == "det.py")
    from mltrain.workspace import Workspace

    Workspace.open().blobs.path(sha).unlink()  # pruned
    refused = cli("runs", "rerun", run["id"])
    assert refused.returncode == 2, refused.output
    assert f"run {run['id']} cannot be rerun: its snapshot {run['snapshot_id']} cannot be restored" in refused.stderr
    assert "pruned or damaged" in refused.stderr
    assert len(cli_json("runs", "list")) == 1  # nothing recorded
    leftovers = project / ".mltrain" / "reruns"
    assert not leftovers.exists() or not any(leftovers.iterdir())
    shutil.rmtree(project / ".mltrain" / "runs")  # a sweep or a run without a record cannot be rerun either
    missing = cli("runs", "rerun", "nope")
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr
