"""``job.outputs``: what a run writes at ``${outputs.NAME}`` becomes a data version when it completes
(never when it fails), with the run as producer; the next job reads it as an input; ``runs show``,
``data show`` and ``models show`` follow the lineage from data to model."""

from __future__ import annotations

from pathlib import Path

PREPROCESS = """
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
assert os.environ["MLTRAIN_OUTPUT_clean"] == out
os.makedirs(os.path.join(out, "sub"), exist_ok=True)
open(os.path.join(out, "rows.csv"), "w").write("x,y\\n1,0\\n2,1\\n3,0\\n4,1\\n")
open(os.path.join(out, "sub", "note.txt"), "w").write("cleaned")
if "--fail" in sys.argv:
    sys.exit(3)
"""

TRAIN = """
import os, sys, joblib
from sklearn.dummy import DummyClassifier
rows = open(os.path.join(sys.argv[sys.argv.index("--data") + 1], "rows.csv")).read().split()[1:]
xs = [[float(r.split(",")[0])] for r in rows]
ys = [int(r.split(",")[1]) for r in rows]
os.makedirs("outputs", exist_ok=True)
joblib.dump(DummyClassifier().fit(xs, ys), "outputs/model.joblib")
print("TRAINED ON", len(rows))
"""


def run_id_of(proc) -> str:
    return next(line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("Run "))


def test_an_output_becomes_a_version_that_feeds_the_next_job(mltrain, cli, cli_json, project: Path):
    (project / "src").mkdir()
    (project / "src" / "prep.py").write_text(PREPROCESS)
    (project / "src" / "train.py").write_text(TRAIN)
    prep = ["job.source_dir=src", "job.script=prep.py", "~register", "+job.arguments.out=${outputs.clean}"]

    failed = mltrain(*prep, "+job.outputs.clean.path=data:clean", "+job.arguments.fail=true")
    assert failed.returncode != 0
    assert cli_json("data", "list") == [] or all(v["name"] != "clean" for v in cli_json("data", "list"))

    done = mltrain(*prep, "+job.outputs.clean.path=data:clean", "+job.outputs.clean.description=cleaned rows")
    assert done.returncode == 0, done.output
    producer = run_id_of(done)
    assert "output: data:clean:1" in done.output
    clean = cli_json("data", "show", "clean")
    assert (clean["version"], clean["description"], clean["lineage"]["produced_by"]["run"]) == (
        1,
        "cleaned rows",
        producer,
    )
    assert sorted(e["relpath"] for e in clean["manifest"]) == ["rows.csv", "sub/note.txt"]
    shown = cli_json("runs", "show", producer)
    assert [(o["key"], o["name"], o["version"], o["digest"]) for o in shown["outputs"]] == [
        ("clean", "clean", 1, clean["digest"])
    ]

    train = mltrain(
        "job.source_dir=src",
        "job.script=train.py",
        "register.name=m",
        "+job.arguments.data=${inputs.rows}",
        "+job.inputs.rows.path=data:clean",
        "+job.inputs.rows.mode=mount",
    )
    assert train.returncode == 0 and "TRAINED ON 4" in train.output, train.output
    consumer = run_id_of(train)
    model = cli_json("models", "show", "m:1")
    assert model["lineage"]["run"] == consumer
    assert [(i["key"], i["name"], i["version"], i["mode"]) for i in model["lineage"]["data"]] == [
        ("rows", "clean", 1, "mount")
    ]
    assert [r["run"] for r in cli_json("data", "show", "clean:1")["lineage"]["read_by"]] == [consumer]
    shown_text = cli("models", "show", "m:1").stdout
    assert "data:clean:1" in shown_text and "Inputs:" in shown_text


def test_a_bad_output_is_refused_before_anything_is_recorded(mltrain, project: Path):
    (project / "src").mkdir()
    (project / "src" / "prep.py").write_text("print('ran')\n")
    for override, needle in [
        ("+job.outputs.clean.path=data:clean:2", "no version: the run creates the next one"),
        ("+job.outputs.clean.path=s3://bucket/x", "an output becomes a new version of a data asset"),
    ]:
        proc = mltrain("job.source_dir=src", "job.script=prep.py", "~register", override)
        assert proc.returncode != 0 and needle in proc.output, proc.output
    proc = mltrain("job.source_dir=src", "job.script=prep.py", "~register", "+job.arguments.out=${outputs.nope}")
    assert proc.returncode != 0 and "the job has no output 'nope'" in proc.output, proc.output
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())
